"""celery_dlx: broker-native delayed retries for Celery on RabbitMQ."""

from .delays import DelayLevels, Route
from .errors import CeleryDLXError, ConfigurationError, RetryPublishError, TopologyMismatch
from .retry import DLXTask, delayed_retry
from .settings import Settings
from .topology import Topology

__all__ = [
    "CeleryDLXError",
    "ConfigurationError",
    "DLXTask",
    "DelayLevels",
    "RetryPublishError",
    "Route",
    "Settings",
    "Topology",
    "TopologyMismatch",
    "delayed_retry",
]
