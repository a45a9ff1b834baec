"""The baseline's SQL: the statements the service sends, written out by hand."""

AUTH_SQL = """
SELECT users.id AS user_id, users.permissions, organizations.id AS org_id, organizations.name AS org_name,
       organizations.subscription_active, organizations.subscription_expires_at, organizations.features
FROM api_tokens JOIN users ON users.id = api_tokens.user_id
JOIN organizations ON organizations.id = users.organization_id
WHERE api_tokens.key_digest = $1 AND api_tokens.revoked_at IS NULL
  AND (api_tokens.expires_at IS NULL OR api_tokens.expires_at > $2) AND users.deleted_at IS NULL
"""

# Create builds its response from memory, so it needs the caller's embedded user too (the
# service's token lookup loads the whole user row anyway).
AUTH_WITH_USER_SQL = AUTH_SQL.replace(
    "SELECT users.id AS user_id,",
    "SELECT users.id AS user_id, users.first_name AS cu_first_name, users.last_name AS cu_last_name, "
    "users.alias AS cu_alias, users.organization_id AS cu_org, users.is_bot AS cu_is_bot, "
    "users.avatar_url AS cu_avatar,",
)

APP_COLUMNS = """
apps.id, apps.name, apps.description, apps.owned_by_organization_id, o.name AS owner_name,
apps.icon_asset_id, a.url AS icon_url, a.kind AS icon_kind, a.content_type AS icon_content_type,
a.size AS icon_size, a.width AS icon_width, a.height AS icon_height, apps.is_app_user_required,
apps.installation_count, apps.created_at, apps.updated_at, apps.required_scopes
"""
APP_JOINS = """
FROM apps JOIN organizations AS o ON o.id = apps.owned_by_organization_id
LEFT OUTER JOIN assets AS a ON a.id = apps.icon_asset_id
"""
OWNED_COLUMNS = (
    APP_COLUMNS
    + """,
apps.is_available_to_anyone, apps.is_available_to_partners, apps.app_user_default_first_name,
apps.app_user_default_last_name, apps.app_user_default_alias, apps.terms_of_service_url,
apps.privacy_policy_url, apps.trigger_url, apps.trigger_conditions, apps.allowed_redirect_uris,
apps.created_by_user_id, cu.first_name AS cu_first_name, cu.last_name AS cu_last_name, cu.alias AS cu_alias,
cu.organization_id AS cu_org, cu.is_bot AS cu_is_bot, cu.avatar_url AS cu_avatar,
apps.updated_by_user_id, uu.first_name AS uu_first_name, uu.last_name AS uu_last_name, uu.alias AS uu_alias,
uu.organization_id AS uu_org, uu.is_bot AS uu_is_bot, uu.avatar_url AS uu_avatar, apps.secret
"""
)
OWNED_JOINS = (
    APP_JOINS
    + """
LEFT OUTER JOIN users AS cu ON cu.id = apps.created_by_user_id
LEFT OUTER JOIN users AS uu ON uu.id = apps.updated_by_user_id
"""
)
OWNED_PAGE_SQL = f"""
SELECT {OWNED_COLUMNS} {OWNED_JOINS}
WHERE apps.owned_by_organization_id = $1 ORDER BY apps.created_at DESC, apps.id DESC LIMIT $2
"""
PUBLIC_PAGE_SQL = f"""
SELECT {APP_COLUMNS} {APP_JOINS}
WHERE apps.is_available_to_anyone AND apps.is_approved
ORDER BY apps.created_at DESC, apps.id DESC LIMIT $1
"""
OWNED_APP_SQL = (
    f"SELECT {OWNED_COLUMNS} {OWNED_JOINS} WHERE apps.owned_by_organization_id = $1 AND apps.id = $2"
)
# The service's view in its order: the headers as JSON text (decoded by orjson in the view), a
# pending attempt's due time from its delivery (one primary-key probe, as the service does).
LOG_COLUMNS = """
id, created_at, app_id, organization_id, webhook_id, endpoint_url, action, resource_id, channel, status,
retry_index, reason, response_status_code, response_body, response_headers::text AS response_headers, duration,
started_at, completed_at,
CASE WHEN status = 'pending' THEN (
    SELECT d.next_attempt_at FROM outbound_deliveries AS d
    WHERE d.id = webhook_log_entries.delivery_id AND d.status = 'pending'
      AND d.current_log_entry_id = webhook_log_entries.id
) END AS next_attempt_at,
request_headers::text AS request_headers, request_body
"""
# Every read of the log stops at the retention ($2: now minus APPS_API_WEBHOOK_LOG_RETENTION_DAYS).
LOG_PAGE_SQL = f"""
SELECT {LOG_COLUMNS} FROM webhook_log_entries WHERE app_id = $1 AND created_at >= $2
ORDER BY created_at DESC, id DESC LIMIT $3
"""
# A cursor page decides its `previous` link in the same statement (as the service does): an
# uncorrelated EXISTS over the rows on the cursor's side, evaluated once.
LOG_PAGE_AFTER_SQL = f"""
SELECT {LOG_COLUMNS},
       EXISTS (SELECT 1 FROM webhook_log_entries
               WHERE app_id = $1 AND created_at >= $2 AND (created_at, id) >= ($3, $4)) AS _other_side
FROM webhook_log_entries WHERE app_id = $1 AND created_at >= $2 AND (created_at, id) < ($3, $4)
ORDER BY created_at DESC, id DESC LIMIT $5
"""
# The webhook log routes check ownership with one primary-key probe, like the service's OwnedAppIdDep.
OWNED_APP_ID_SQL = "SELECT apps.id FROM apps WHERE apps.owned_by_organization_id = $1 AND apps.id = $2"
# Installed apps: the apps the organization has an installation of (one per app), newest app first,
# keyed on the app's (created_at, id) as the service pages them.
INSTALLED_PAGE_SQL = f"""
SELECT {APP_COLUMNS}, apps.trigger_conditions {APP_JOINS}
JOIN app_installations AS i ON i.app_id = apps.id AND i.organization_id = $1
ORDER BY apps.created_at DESC, apps.id DESC LIMIT $2
"""
USER_EMBED_COLUMNS = """
cu.first_name AS cu_first_name, cu.last_name AS cu_last_name, cu.alias AS cu_alias,
cu.organization_id AS cu_org, cu.is_bot AS cu_is_bot, cu.avatar_url AS cu_avatar,
uu.first_name AS uu_first_name, uu.last_name AS uu_last_name, uu.alias AS uu_alias,
uu.organization_id AS uu_org, uu.is_bot AS uu_is_bot, uu.avatar_url AS uu_avatar
"""
# The app a webhook embeds (its base view; `app_` labels: the webhook has its own id and times).
EMBEDDED_APP_COLUMNS = """
apps.id AS app_id, apps.name AS app_name, apps.description AS app_description,
apps.owned_by_organization_id AS app_owned_by_organization_id, o.name AS app_owner_name,
apps.icon_asset_id AS app_icon_asset_id, a.url AS app_icon_url, a.kind AS app_icon_kind,
a.content_type AS app_icon_content_type, a.size AS app_icon_size, a.width AS app_icon_width,
a.height AS app_icon_height, apps.is_app_user_required AS app_is_app_user_required,
apps.installation_count AS app_installation_count, apps.created_at AS app_created_at,
apps.updated_at AS app_updated_at
"""
# Webhooks, as the service reads them after the ownership probe: one statement for the page, the
# embedded app joined, each webhook's subscriptions (in their order) and its last 24 hours of
# attempts (an index-only range scan) aggregated as JSON text, decoded by orjson in the view.
WEBHOOK_PAGE_SQL = f"""
SELECT w.id, w.organization_id, wo.name AS org_name, w.endpoint_url, w.created_at, w.updated_at,
       w.is_disabled, w.disabled_at, w.disabled_reason, w.last_success_at, w.last_failure_at,
       (SELECT json_build_object(
                   'successful', count(*) FILTER (WHERE e.status = 'successful'),
                   'failed', count(*) FILTER (WHERE e.status = 'failed'),
                   'pending', count(*) FILTER (WHERE e.status IN ('pending', 'started')),
                   'p50_duration_ms', percentile_disc(0.5) WITHIN GROUP (ORDER BY e.duration),
                   'p95_duration_ms', percentile_disc(0.95) WITHIN GROUP (ORDER BY e.duration))
        FROM webhook_log_entries AS e
        WHERE e.webhook_id = w.id AND e.created_at >= now() - interval '24 hours')::text AS delivery_stats,
       (SELECT coalesce(json_agg(json_build_object(
                   'channel_pattern', s.channel_pattern, 'is_additions_subscribed', s.is_additions_subscribed,
                   'is_changes_subscribed', s.is_changes_subscribed,
                   'is_removals_subscribed', s.is_removals_subscribed) ORDER BY s.position), '[]'::json)::text
        FROM webhook_channel_subscriptions AS s WHERE s.webhook_id = w.id) AS channel_subscriptions,
       w.created_by_user_id, w.updated_by_user_id, {EMBEDDED_APP_COLUMNS}, {USER_EMBED_COLUMNS}
FROM webhooks AS w JOIN organizations AS wo ON wo.id = w.organization_id
JOIN apps ON apps.id = w.app_id JOIN organizations AS o ON o.id = apps.owned_by_organization_id
LEFT OUTER JOIN assets AS a ON a.id = apps.icon_asset_id
LEFT OUTER JOIN users AS cu ON cu.id = w.created_by_user_id
LEFT OUTER JOIN users AS uu ON uu.id = w.updated_by_user_id
WHERE w.app_id = $1 ORDER BY w.created_at DESC, w.id DESC LIMIT $2
"""
# Creates take turns per organization and count its apps after the lock, as the service does
# (`apps.service.create_app`: an advisory lock on the organization's key, so a concurrent creator's
# commit is counted; at MAX_APPS_PER_ORGANIZATION the answer is 409).
LOCK_OWNER_APPS_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
OWNED_APPS_COUNT_SQL = "SELECT count(*) FROM apps WHERE apps.owned_by_organization_id = $1"
MAX_APPS_PER_ORGANIZATION = 100
# Every column named, as the service's INSERT does (its defaults written out).
INSERT_APP_SQL = """
INSERT INTO apps (id, owned_by_organization_id, name, description, icon_asset_id, is_available_to_anyone,
    is_approved, is_available_to_partners, is_app_user_required, app_user_default_first_name,
    app_user_default_last_name, app_user_default_alias, terms_of_service_url, privacy_policy_url, trigger_url,
    trigger_conditions, required_scopes, allowed_redirect_uris, installation_count, secret, previous_secret,
    previous_secret_expires_at, created_by_user_id, updated_by_user_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, NULL, false, false, false, false, NULL, NULL, NULL, $5, $6, NULL, '{}', '{}', '{}', 0,
        $7, NULL, NULL, $8, $8, $9, $9)
"""
# Installs lock the app's row first, then check "may install" in a fresh statement (as the
# service does): one `SELECT ... FOR NO KEY UPDATE` with the check in its WHERE would judge the
# shares and partnerships by the snapshot taken before the lock wait, i.e. miss a concurrent unshare.
LOCK_APP_SQL = "SELECT apps.id FROM apps WHERE apps.id = $1 FOR NO KEY UPDATE"
INSTALLABLE_APP_SQL = f"""
SELECT {APP_COLUMNS}, apps.trigger_conditions {APP_JOINS}
WHERE apps.id = $1 AND (apps.owned_by_organization_id = $2
    OR (apps.is_available_to_anyone AND apps.is_approved)
    OR (apps.owned_by_organization_id <> $2
        AND EXISTS (SELECT 1 FROM partnerships
                    WHERE organization_a_id = least(apps.owned_by_organization_id, $2)
                      AND organization_b_id = greatest(apps.owned_by_organization_id, $2))
        AND (apps.is_available_to_partners IS true
             OR EXISTS (SELECT 1 FROM app_shares WHERE app_shares.app_id = apps.id
                        AND app_shares.organization_id = $2))))
"""
# As the service does: the installation, the app's counter and the install's three events in one
# statement of data-modifying CTEs (one round trip); the new count is the one read under the lock
# plus one (every counter change locks the row first).
INSTALL_SQL = """
WITH installation AS (
    INSERT INTO app_installations (id, app_id, organization_id, app_user_id, allowed_scopes, created_by_user_id,
                                   created_at, updated_at)
    VALUES ($19, $20, $21, NULL, $22, $23, $24, $24)
), counter AS (
    UPDATE apps SET installation_count = installation_count + 1, updated_at = updated_at WHERE id = $20
)
INSERT INTO events (organization_id, channel, action, resource_id, resource, required_scope, actor_user_id,
                    created_at)
VALUES ($1, $2, 'added', $3, $4, NULL, $5, $6), ($7, $8, 'added', $9, $10, NULL, $11, $12),
       ($13, $14, 'added', $15, $16, NULL, $17, $18)
"""
