"""Task base classes for social networks' APIs: each acts on the verdict of
:mod:`celery_dlx.classify` (retry through the broker, defer, park, fail).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .tasks import AuthInvalid, CallDeferred, CallFailed, FacebookTask, GitHubTask, HTTPTask, InstagramTask, LinkedInTask, MastodonTask, RedditTask, TwitterTask, VerdictError
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".tasks": "AuthInvalid CallDeferred CallFailed FacebookTask GitHubTask HTTPTask InstagramTask LinkedInTask MastodonTask RedditTask TwitterTask VerdictError",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "AuthInvalid", "CallDeferred", "CallFailed", "FacebookTask", "GitHubTask", "HTTPTask", "InstagramTask",
    "LinkedInTask", "MastodonTask", "RedditTask", "TwitterTask", "VerdictError",
]
