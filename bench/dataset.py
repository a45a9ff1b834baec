"""The data set's shape and the statements that write it (server-side `INSERT ... SELECT`).

bench/seed.py runs them in one transaction; `seed_sql(factor)` scales everything around the big
tenant (organization 0 and its app 0), which keeps its shape at every factor.
"""

from __future__ import annotations

ORGANIZATIONS = 2_000
APPS = 10_000
BIG_TENANT_APPS = 200
INSTALLATIONS_PER_ORG = 50
WEBHOOKS = 10_000
SUBSCRIPTIONS_PER_WEBHOOK = 10
DELIVERIES = 500_000
HOT_APP_DELIVERIES = 5_000  # x 2 attempts = 10,000 log entries of app 0
HOT_APP_WEBHOOKS = 30

PATTERNS = (
    "/api/v5/orgs/{organization_id}/chats",
    "/api/v5/orgs/{organization_id}/chats/*/messages",
    "/api/v5/users/{user_id}/chats",
    "/api/v5/orgs/{organization_id}/app_installations",
    "/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations",
    "/api/v5/orgs/{organization_id}/users",
    "/api/v5/orgs/{organization_id}/visitors",
    "/api/v5/orgs/{organization_id}/rooms",
    "/api/v5/orgs/{organization_id}/teams",
    "/api/v5/orgs/{organization_id}/*/reports",
)


U = "md5('bench:{kind}:' || ({expr})::text)::uuid"


def u(kind: str, expr: str) -> str:
    return U.format(kind=kind, expr=expr)


# Apps: 0..199 belong to organization 0, the rest are spread over organizations 1..n-1.
def app_owner_sql(organizations: int) -> str:
    return (
        f"(CASE WHEN a < {BIG_TENANT_APPS} THEN 0 ELSE 1 + (a - {BIG_TENANT_APPS}) % {organizations - 1} END)"
    )


def seed_sql(factor: int = 1) -> list[str]:
    """The seed's statements for `factor` times the data set.

    Everything scales with the factor except the big tenant's shape (organization 0's 200 apps
    and 50 installations, app 0's 30 webhooks and 10,000 log entries), so the benchmarked pages
    hold the same rows at every factor and only the tables around them grow. Time spreads that
    grow with the row counts (installations, deliveries) are divided by the factor: the log still
    spans six days.
    """
    organizations, apps = ORGANIZATIONS * factor, APPS * factor
    webhooks, deliveries = WEBHOOKS * factor, DELIVERIES * factor
    app_owner = app_owner_sql(organizations)
    return [
        # --- organizations, admins, tokens, icons ------------------------------------------------
        f"""
        INSERT INTO organizations (id, name, subscription_active, subscription_expires_at, features,
                                   created_at, updated_at)
        SELECT {u("org", "o")}, 'bench-org-' || lpad(o::text, 5, '0'), true, NULL,
               ARRAY['apps', 'app_provider']::varchar[],
               now() - interval '30 days' + o * interval '1 second', now() - interval '30 days'
        FROM generate_series(0, {organizations - 1}) AS o
        """,
        f"""
        INSERT INTO users (id, organization_id, first_name, last_name, alias, email, avatar_url, is_bot,
                           permissions, password_hash, deleted_at, created_at, updated_at)
        SELECT {u("user", "o")}, {u("org", "o")}, 'Admin', 'Number ' || o, NULL,
               'bench-admin-' || o || '@example.com', 'https://cdn.example.com/avatars/' || o || '.png', false,
               ARRAY['settings', 'users', 'reports']::varchar[], NULL, NULL,
               now() - interval '30 days', now() - interval '30 days'
        FROM generate_series(0, {organizations - 1}) AS o
        """,
        f"""
        INSERT INTO api_tokens (id, user_id, key_digest, key_prefix, app_installation_id, created_at,
                                expires_at, revoked_at)
        SELECT {u("token", "o")}, {u("user", "o")},
               sha256(convert_to('bench_' || md5('bench:key:' || o::text), 'UTF8')),
               left('bench_' || md5('bench:key:' || o::text), 8), NULL, now() - interval '30 days', NULL, NULL
        FROM generate_series(0, {organizations - 1}) AS o
        """,
        f"""
        INSERT INTO assets (id, organization_id, url, kind, content_type, size, width, height,
                            created_at, updated_at)
        SELECT {u("asset", "o")}, {u("org", "o")}, 'https://cdn.example.com/icons/' || o || '.png', 'image',
               'image/png', 4096 + o, 128, 128, now() - interval '30 days', now() - interval '30 days'
        FROM generate_series(0, {organizations - 1}) AS o
        """,
        # Each organization partners with the next one (stored with the smaller id first).
        f"""
        INSERT INTO partnerships (organization_a_id, organization_b_id, created_at)
        SELECT least(x, y), greatest(x, y), now() - interval '29 days'
        FROM (SELECT {u("org", "o")} AS x, {u("org", f"(o + 1) % {organizations}")} AS y
              FROM generate_series(0, {organizations - 1}) AS o) AS pairs
        ON CONFLICT DO NOTHING
        """,
        # --- apps ------------------------------------------------------------------------------
        f"""
        INSERT INTO apps (id, owned_by_organization_id, name, description, icon_asset_id,
                          is_available_to_anyone, is_approved, is_available_to_partners, is_app_user_required,
                          app_user_default_first_name, app_user_default_last_name, app_user_default_alias,
                          terms_of_service_url, privacy_policy_url, trigger_url, trigger_conditions,
                          required_scopes, allowed_redirect_uris, installation_count, secret,
                          created_by_user_id, updated_by_user_id, created_at, updated_at)
        SELECT {u("app", "a")}, {u("org", "owner")}, 'Bench app ' || a,
               'App number ' || a || ' of the benchmark data set: chats, reports and more.',
               CASE WHEN a % 2 = 0 THEN {u("asset", "owner")} END,
               a % 10 IN (0, 1, 2, 3), a % 10 IN (0, 1, 2), a % 10 IN (4, 5, 6), a % 10 IN (0, 5),
               CASE WHEN a % 10 IN (0, 5) THEN 'Bot' END, CASE WHEN a % 10 IN (0, 5) THEN 'Number ' || a END,
               CASE WHEN a % 10 = 0 THEN 'bot' || a END,
               'https://apps.example.com/' || a || '/terms', 'https://apps.example.com/' || a || '/privacy',
               CASE WHEN a % 4 = 0 THEN 'https://apps.example.com/' || a || '/trigger' END,
               CASE WHEN a % 4 = 0 THEN ARRAY['install', 'chat_start']::varchar[] ELSE ARRAY[]::varchar[] END,
               CASE a % 3 WHEN 0 THEN ARRAY['reports']::varchar[] WHEN 1 THEN ARRAY['reports', 'users']::varchar[]
                          ELSE ARRAY[]::varchar[] END,
               ARRAY['https://apps.example.com/' || a || '/callback']::varchar[], 0,
               encode(decode(md5('bench:secret:' || a) || md5('bench:secret2:' || a), 'hex'), 'base64'),
               {u("user", "owner")}, {u("user", "owner")},
               now() - interval '20 days' + a * interval '100 milliseconds',
               now() - interval '20 days' + a * interval '100 milliseconds'
        FROM (SELECT a, {app_owner} AS owner FROM generate_series(0, {apps - 1}) AS a) AS numbered
        """,
        # --- installations: 50 public approved apps per organization --------------------------------
        """
        CREATE TEMP TABLE bench_public ON COMMIT DROP AS
        SELECT (row_number() OVER (ORDER BY created_at, id) - 1)::int AS n, id, required_scopes,
               is_app_user_required, app_user_default_first_name, app_user_default_last_name,
               app_user_default_alias
        FROM apps WHERE is_available_to_anyone AND is_approved
        """,
        f"""
        CREATE TEMP TABLE bench_installs ON COMMIT DROP AS
        SELECT o, k, {u("installation", "o || ':' || k")} AS id, p.id AS app_id, {u("org", "o")} AS org_id,
               p.required_scopes, p.is_app_user_required, p.app_user_default_first_name,
               p.app_user_default_last_name, p.app_user_default_alias
        FROM generate_series(0, {organizations - 1}) AS o
        CROSS JOIN generate_series(0, {INSTALLATIONS_PER_ORG - 1}) AS k
        JOIN bench_public AS p ON p.n = (o * 7 + k * 61) % (SELECT count(*) FROM bench_public)
        """,
        f"""
        INSERT INTO users (id, organization_id, first_name, last_name, alias, email, avatar_url, is_bot,
                           permissions, password_hash, deleted_at, created_at, updated_at)
        SELECT {u("appuser", "o || ':' || k")}, org_id, app_user_default_first_name, app_user_default_last_name,
               app_user_default_alias, NULL, NULL, true, ARRAY[]::varchar[], NULL, NULL,
               now() - interval '10 days', now() - interval '10 days'
        FROM bench_installs WHERE is_app_user_required
        """,
        f"""
        INSERT INTO app_installations (id, app_id, organization_id, app_user_id, allowed_scopes,
                                       created_by_user_id, created_at, updated_at)
        SELECT id, app_id, org_id, CASE WHEN is_app_user_required THEN {u("appuser", "o || ':' || k")} END,
               required_scopes, {u("user", "o")},
               now() - interval '10 days' + (o * {INSTALLATIONS_PER_ORG} + k) * interval '1 second' / {factor},
               now() - interval '10 days' + (o * {INSTALLATIONS_PER_ORG} + k) * interval '1 second' / {factor}
        FROM bench_installs
        """,
        """
        UPDATE apps SET installation_count = counts.n
        FROM (SELECT app_id, count(*) AS n FROM app_installations GROUP BY app_id) AS counts
        WHERE apps.id = counts.app_id
        """,
        # --- webhooks: one per app, 10 channel subscriptions each ------------------------------------
        f"""
        INSERT INTO webhooks (id, app_id, organization_id, endpoint_url, created_by_user_id, updated_by_user_id,
                              created_at, updated_at)
        SELECT {u("webhook", "a")}, {u("app", "a")}, {u("org", "owner")},
               'https://hooks.example.com/bench/' || a, {u("user", "owner")}, {u("user", "owner")},
               now() - interval '15 days' + a * interval '10 milliseconds',
               now() - interval '15 days' + a * interval '10 milliseconds'
        FROM (SELECT a, {app_owner} AS owner FROM generate_series(0, {webhooks - 1}) AS a) AS numbered
        """,
        # App 0 has 29 more webhooks (older than its first), 3 subscriptions each: its webhook list is a
        # full page of 25 with a `next` link.
        f"""
        INSERT INTO webhooks (id, app_id, organization_id, endpoint_url, created_by_user_id, updated_by_user_id,
                              created_at, updated_at)
        SELECT {u("webhook", "'0:' || w")}, {u("app", "0")}, {u("org", "0")},
               'https://hooks.example.com/bench/0/' || w, {u("user", "0")}, {u("user", "0")},
               now() - interval '16 days' + w * interval '1 minute',
               now() - interval '16 days' + w * interval '1 minute'
        FROM generate_series(1, {HOT_APP_WEBHOOKS - 1}) AS w
        """,
        f"""
        INSERT INTO webhook_channel_subscriptions (id, webhook_id, app_id, position, channel_pattern,
                                                   is_additions_subscribed, is_changes_subscribed,
                                                   is_removals_subscribed)
        SELECT {u("subscription", "'0:' || w || ':' || s")}, {u("webhook", "'0:' || w")}, {u("app", "0")}, s,
               (ARRAY[{", ".join(f"'{p}'" for p in PATTERNS)}])[s + 1], true, s % 2 = 0, s % 3 = 0
        FROM generate_series(1, {HOT_APP_WEBHOOKS - 1}) AS w CROSS JOIN generate_series(0, 2) AS s
        """,
        f"""
        INSERT INTO webhook_channel_subscriptions (id, webhook_id, app_id, position, channel_pattern,
                                                   is_additions_subscribed, is_changes_subscribed,
                                                   is_removals_subscribed)
        SELECT {u("subscription", "a || ':' || s")}, {u("webhook", "a")}, {u("app", "a")}, s,
               (ARRAY[{", ".join(f"'{p}'" for p in PATTERNS)}])[s + 1], true, s % 2 = 0, s % 3 = 0
        FROM generate_series(0, {webhooks - 1}) AS a
        CROSS JOIN generate_series(0, {SUBSCRIPTIONS_PER_WEBHOOK - 1}) AS s
        """,
        # --- deliveries and log entries ------------------------------------------------------------
        # Deliveries 0..4,999 belong to app 0 (webhook 0); the rest cycle over webhooks 1..9,999.
        f"""
        CREATE TEMP TABLE bench_deliveries ON COMMIT DROP AS
        SELECT d, CASE WHEN d < {HOT_APP_DELIVERIES} THEN 0
                       ELSE 1 + (d - {HOT_APP_DELIVERIES}) % {webhooks - 1} END AS a,
               now() - interval '6 days' + d * interval '1 second' / {factor} AS at
        FROM generate_series(0, {deliveries - 1}) AS d
        """,
        f"""
        INSERT INTO outbound_deliveries (id, kind, app_id, organization_id, webhook_id, event_id,
            installation_id, target_organization_id, app_user_id, method, endpoint_url, endpoint_host,
            channel, action, resource_id, payload, signing_secret, message_id, status, attempt_count,
            max_attempts, next_attempt_at, locked_until, locked_by, current_log_entry_id, created_at,
            updated_at, completed_at)
        SELECT {u("delivery", "d")}, 'webhook', {u("app", "a")}, {u("org", app_owner)}, {u("webhook", "a")},
               NULL, NULL, {u("org", app_owner)}, NULL, 'POST', 'https://hooks.example.com/bench/' || a,
               'https://hooks.example.com:443', '/api/v5/orgs/' || {u("org", app_owner)} || '/chats', 'added',
               'chat-' || d,
               jsonb_build_object('channel', '/api/v5/orgs/' || {u("org", app_owner)} || '/chats',
                                  'action', 'added', 'resource_id', 'chat-' || d,
                                  'resource', jsonb_build_object('id', 'chat-' || d, 'status', 'open')),
               NULL, 'msg_' || md5('bench:message:' || d), 'successful', 2, 8, at + interval '5 seconds',
               NULL, NULL, {u("entry", "d || ':1'")}, at, at + interval '5 seconds', at + interval '5 seconds'
        FROM bench_deliveries
        """,
        f"""
        INSERT INTO webhook_log_entries (id, delivery_id, app_id, organization_id, webhook_id, endpoint_url,
            action, resource_id, channel, status, retry_index, reason, response_status_code, response_body,
            response_headers, duration, created_at, updated_at, scheduled_at, started_at, completed_at)
        SELECT {u("entry", "d || ':' || r")}, {u("delivery", "d")}, {u("app", "a")}, {u("org", app_owner)},
               {u("webhook", "a")}, 'https://hooks.example.com/bench/' || a, 'added', 'chat-' || d,
               '/api/v5/orgs/' || {u("org", app_owner)} || '/chats',
               CASE r WHEN 0 THEN 'failed' ELSE 'successful' END, r,
               CASE r WHEN 0 THEN 'Non-2xx response: 500.' END, CASE r WHEN 0 THEN 500 ELSE 200 END,
               CASE r WHEN 0 THEN 'upstream error' ELSE 'ok' END,
               jsonb_build_object('content-type', 'text/plain', 'content-length', '2'), 20 + d % 50,
               at + r * interval '5 seconds', at + r * interval '5 seconds' + interval '30 milliseconds',
               at + r * interval '5 seconds', at + r * interval '5 seconds',
               at + r * interval '5 seconds' + interval '30 milliseconds'
        FROM bench_deliveries CROSS JOIN generate_series(0, 1) AS r
        """,
    ]
