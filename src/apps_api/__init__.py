"""giosg Apps API v5: apps, installations, app users and signed webhooks."""

__version__ = "0.2.0"
