"""Webhooks: subscriptions, event matching and reliable signed delivery (docs/design.md section 8)."""
