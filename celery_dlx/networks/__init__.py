"""Task base classes for social networks' APIs: act on a response's verdict."""

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

# The public path of the errors (a parked message records it as the error's type).
for _error in (VerdictError, CallFailed, AuthInvalid, CallDeferred):
    _error.__module__ = __name__
