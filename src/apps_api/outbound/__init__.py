"""Every outbound HTTP request (webhooks and triggers) goes through this package's guarded client."""
