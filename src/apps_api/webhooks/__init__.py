"""Webhooks: subscriptions, event matching and reliable signed delivery (DESIGN.md section 8)."""
