"""Task base classes for social networks' APIs: each acts on the verdict of
:mod:`celery_dlx.classify` (retry through the broker, defer, park, fail).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .tasks import (
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

_NAMES = {
    "AuthInvalid": ".tasks",
    "CallDeferred": ".tasks",
    "CallFailed": ".tasks",
    "FacebookTask": ".tasks",
    "GitHubTask": ".tasks",
    "HTTPTask": ".tasks",
    "InstagramTask": ".tasks",
    "LinkedInTask": ".tasks",
    "MastodonTask": ".tasks",
    "RedditTask": ".tasks",
    "TwitterTask": ".tasks",
    "VerdictError": ".tasks",
}

__getattr__, __dir__ = lazy_names(__name__, _NAMES)

__all__ = [
    "AuthInvalid",
    "CallDeferred",
    "CallFailed",
    "FacebookTask",
    "GitHubTask",
    "HTTPTask",
    "InstagramTask",
    "LinkedInTask",
    "MastodonTask",
    "RedditTask",
    "TwitterTask",
    "VerdictError",
]
