"""celery_dlx: broker-native delayed retries for Celery on RabbitMQ.

Every public name is loaded on first use (PEP 562), so importing a part of the package (the
delay planner, the classifiers) does not import Celery, kombu or redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .breaker import Breaker, BreakerOpen
    from .broker.plan import DelayLevels, Route
    from .broker.topology import Topology
    from .broker.warm import warm_up
    from .errors import CeleryDLXError, ConfigurationError, RetryPublishError, TopologyMismatch
    from .networks import AuthInvalid, CallDeferred, CallFailed, FacebookTask, GitHubTask, HTTPTask, InstagramTask, LinkedInTask, MastodonTask, RedditTask, TwitterTask, VerdictError
    from .pagination import Guards, Halt, Page, PageLedger, PageTask, cursor_pages, offset_pages, window_pages
    from .retry import DLXTask, delayed_retry
    from .settings import Settings
    from .softlimit import SoftLimitReached, SoftLimitRetry, SoftLimitTask
    from .tracking import UNKNOWN, TreeResult, UntrackableTask, spawn, start_tree, state_of
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".breaker": "Breaker BreakerOpen",
    ".broker.plan": "DelayLevels Route",
    ".broker.topology": "Topology",
    ".broker.warm": "warm_up",
    ".errors": "CeleryDLXError ConfigurationError RetryPublishError TopologyMismatch",
    ".networks": "AuthInvalid CallDeferred CallFailed FacebookTask GitHubTask HTTPTask InstagramTask LinkedInTask MastodonTask RedditTask TwitterTask VerdictError",
    ".pagination": "Guards Halt Page PageLedger PageTask cursor_pages offset_pages window_pages",
    ".retry": "DLXTask delayed_retry",
    ".settings": "Settings",
    ".softlimit": "SoftLimitReached SoftLimitRetry SoftLimitTask",
    ".tracking": "UNKNOWN TreeResult UntrackableTask spawn start_tree state_of",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "AuthInvalid", "Breaker", "BreakerOpen", "CallDeferred", "CallFailed", "CeleryDLXError", "ConfigurationError",
    "cursor_pages", "delayed_retry", "DelayLevels", "DLXTask", "FacebookTask", "GitHubTask", "Guards", "Halt",
    "HTTPTask", "InstagramTask", "LinkedInTask", "MastodonTask", "offset_pages", "Page", "PageLedger", "PageTask",
    "RedditTask", "RetryPublishError", "Route", "Settings", "SoftLimitReached", "SoftLimitRetry", "SoftLimitTask",
    "spawn", "start_tree", "state_of", "Topology", "TopologyMismatch", "TreeResult", "TwitterTask", "UNKNOWN",
    "UntrackableTask", "VerdictError", "window_pages",
    "warm_up",
]
