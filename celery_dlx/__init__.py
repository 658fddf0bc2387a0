"""celery_dlx: broker-native delayed retries for Celery on RabbitMQ."""

from .delays import DelayLevels, Route
from .errors import CeleryDLXError, ConfigurationError, RetryPublishError, TopologyMismatch
from .networks import (
    AuthInvalid,
    CallDeferred,
    CallFailed,
    FacebookTask,
    GitHubTask,
    HTTPTask,
    InstagramTask,
    LinkedInTask,
    MastodonTask,
    RedditTask,
    TwitterTask,
    VerdictError,
)
from .retry import DLXTask, delayed_retry
from .settings import Settings
from .topology import Topology

__all__ = [
    "AuthInvalid",
    "CallDeferred",
    "CallFailed",
    "CeleryDLXError",
    "ConfigurationError",
    "DLXTask",
    "DelayLevels",
    "FacebookTask",
    "GitHubTask",
    "HTTPTask",
    "InstagramTask",
    "LinkedInTask",
    "MastodonTask",
    "RedditTask",
    "RetryPublishError",
    "Route",
    "Settings",
    "Topology",
    "TopologyMismatch",
    "TwitterTask",
    "VerdictError",
    "delayed_retry",
]
