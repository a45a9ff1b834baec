"""The giosg trigger protocol, in one place (docs/design.md section 7).

- tokens.py: the `data` JWT (signed with the app secret) and `trigger_request_url()`, the one
  builder of a trigger's query;
- location.py: `trigger_location()`, every trigger's URL with its token and app user code
  minted now (browser redirects and the worker's GETs alike); `installed_app_page()`;
- scheduling.py: `install` on an API install and `uninstall`: delivery rows the worker sends
  like webhooks (retries, log entries, SSRF guard); a 2xx or 3xx answer counts as delivered
  (`retry.classify`).

In the browser flow the `install` trigger is the browser's redirect instead (installflow), and
the console's `setup` / `manual_*` too. Triggers sit in delivery/ because the worker sends them
through its pipeline; the access token they carry is auth's (auth/access_tokens.py), so auth
reads it without importing delivery.
"""
