"""Webhook delivery: events, the outbox, dispatch, endpoint pumps, signing and trigger requests."""
