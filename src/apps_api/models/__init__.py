"""ORM models, one table a module. Importing this package registers every table."""

from apps_api.models.api_token import ApiToken
from apps_api.models.app import SCOPES, TRIGGER_CONDITIONS, App
from apps_api.models.app_installation import AppInstallation
from apps_api.models.app_installation_removal import AppInstallationRemoval
from apps_api.models.app_share import AppShare
from apps_api.models.app_user_code import AppUserCode
from apps_api.models.asset import Asset
from apps_api.models.base import Base
from apps_api.models.event import Event
from apps_api.models.organization import FEATURES, Organization
from apps_api.models.outbound_delivery import OutboundDelivery
from apps_api.models.partnership import Partnership
from apps_api.models.user import PERMISSIONS, User
from apps_api.models.webhook import Webhook
from apps_api.models.webhook_channel import WebhookChannel
from apps_api.models.webhook_channel_subscription import WebhookChannelSubscription
from apps_api.models.webhook_log_entry import WebhookLogEntry

__all__ = [
    "FEATURES",
    "PERMISSIONS",
    "SCOPES",
    "TRIGGER_CONDITIONS",
    "ApiToken",
    "App",
    "AppInstallation",
    "AppInstallationRemoval",
    "AppShare",
    "AppUserCode",
    "Asset",
    "Base",
    "Event",
    "Organization",
    "OutboundDelivery",
    "Partnership",
    "User",
    "Webhook",
    "WebhookChannel",
    "WebhookChannelSubscription",
    "WebhookLogEntry",
]
