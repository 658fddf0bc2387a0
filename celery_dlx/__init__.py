"""celery_dlx: broker-native delayed retries for Celery on RabbitMQ."""

from .breaker import Breaker, BreakerOpen
from .broker.plan import DelayLevels, Route
from .errors import CeleryDLXError, ConfigurationError, RetryPublishError, TopologyMismatch
from .networks.tasks import (
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
from .pagination.plans import Guards, Halt, Page
from .pagination.tasks import PageLedger, PageTask, cursor_pages, offset_pages, window_pages
from .retry import DLXTask, delayed_retry
from .settings import Settings
from .softlimit.task import SoftLimitReached, SoftLimitRetry, SoftLimitTask
from .broker.topology import Topology
from .tracking.store import UNKNOWN, TreeResult, UntrackableTask, spawn, start_tree, state_of

__all__ = [
    "AuthInvalid",
    "Breaker",
    "BreakerOpen",
    "CallDeferred",
    "CallFailed",
    "CeleryDLXError",
    "ConfigurationError",
    "cursor_pages",
    "delayed_retry",
    "DelayLevels",
    "DLXTask",
    "FacebookTask",
    "GitHubTask",
    "Guards",
    "Halt",
    "HTTPTask",
    "InstagramTask",
    "LinkedInTask",
    "MastodonTask",
    "offset_pages",
    "Page",
    "PageLedger",
    "PageTask",
    "RedditTask",
    "RetryPublishError",
    "Route",
    "Settings",
    "SoftLimitReached",
    "SoftLimitRetry",
    "SoftLimitTask",
    "spawn",
    "start_tree",
    "state_of",
    "Topology",
    "TopologyMismatch",
    "TreeResult",
    "TwitterTask",
    "UNKNOWN",
    "UntrackableTask",
    "VerdictError",
    "window_pages",
]
