"""The install web flow: browser pages at /apps/{app_id}/install (docs/install-flow.md), on `web`."""
