"""Task base classes per social network: classify a response, then retry through the broker,
fail for good, or report dead credentials.

``self.check(response)`` returns a successful ``requests``/``httpx`` response unchanged and
otherwise acts on its :class:`~celery_dlx.classify.Verdict`; ``self.handle_exception(exc)``
does the same for the exceptions those libraries raise (timeouts and connection errors are
worth a quick retry)::

    @app.task(bind=True, base=TwitterTask, max_retries=8)
    def fetch_timeline(self, account_id):
        try:
            response = requests.get(URL, headers=auth_for(account_id), timeout=10)
        except requests.RequestException as exc:
            self.handle_exception(exc)
        return self.check(response).json()

What happens, by verdict kind:

- ``RETRY_SOON``: :func:`~celery_dlx.delayed_retry` after :attr:`retry_wait` (backoff), and
  never before a ``Retry-After`` the response gave;
- ``RATE_LIMITED``: retried at the reset time the response names plus a jitter that only
  ever adds (:attr:`rate_limit_jitter`), or after :attr:`rate_limit_wait` when it names none;
- ``OVER_CAPACITY``: like ``RETRY_SOON`` with the longer :attr:`over_capacity_wait`;
- ``AUTH_INVALID``: when the verdict is ``refreshable`` (the access token or session only
  expired) and :meth:`on_token_expired` returns True (the application refreshed the token),
  the task is retried at once through the broker without using up ``max_retries`` (at most
  :attr:`max_token_refreshes` times per message); otherwise :meth:`on_auth_invalid` (override
  it to mark the token bad), then :class:`AuthInvalid`;
- ``PERMISSION``, ``NOT_FOUND``, ``BAD_REQUEST``: :class:`CallFailed`, no retry.

Failures of the kinds in :attr:`park_verdicts` (AUTH_INVALID, PERMISSION and BAD_REQUEST by
default: a new token, a granted permission or a deployed fix makes them work) are parked
before the task fails (:mod:`celery_dlx.parking.park`, ``dlx_park``), so ``celery dlx replay`` can
send them back to work; NOT_FOUND is not (the object is gone).  Exhausted retries are parked
too, as for every :class:`~celery_dlx.DLXTask`.

Circuit breaker (:mod:`celery_dlx.breaker`, ``docs/breaker.md``): before the task body runs,
``before_start`` asks the network's breaker; while it is open the task does not run at all and
waits in the broker for a slot after the next probe (without using up ``max_retries``).
Every verdict is reported to it (RETRY_SOON and OVER_CAPACITY count as failures).  On by
default when the app has Redis (``dlx_breaker_url``, else a ``redis://`` result backend);
without Redis, or with ``dlx_breaker=False`` or ``breaker = False`` on the class, tasks behave
exactly as without it.  Subclasses that override ``before_start``, ``after_return`` or
``on_retry`` must call ``super()``.

Neither ``requests`` nor ``httpx`` is imported: responses are read by duck typing and their
exception types are looked up only if the application already imported the library.

Credentials never leave through these paths: verdict reasons are redacted, the exceptions
that reach the result backend are this module's (their arguments are the redacted verdict,
and the HTTP library's exception, whose message often holds the URL with its
``access_token``, is not chained to them), and the argument reprs Celery writes into every
message's headers (``argsrepr``/``kwargsrepr``, on the first send and on each retry) are
redacted too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, ClassVar, NoReturn, TypeVar

from celery.utils.saferepr import saferepr
from tenacity import wait_exponential, wait_random

from ..backoff import WaitStrategy, wait_seconds
from ..breaker import Breaker, Policy
from ..breaker import tasks as breakers
from ..broker.headers import TOKEN_REFRESHES_HEADER
from ..classify import Verdict, VerdictKind, classify
from ..errors import CeleryDLXError
from ..parking.park import park
from ..redact import redact, redact_value
from ..retry import DLXTask

logger = logging.getLogger(__name__)


_E = TypeVar("_E", bound="VerdictError")


class VerdictError(CeleryDLXError):
    """A network call that did not succeed, described by the verdict that classified it.

    ``args`` are ``(kind, reason, code, subcode, status, network)``: plain JSON values, so the
    exception survives a JSON result backend, which rebuilds it as ``cls(*args)``.
    """

    def __init__(
        self,
        kind: str,
        reason: str = "",
        code: int | str | None = None,
        subcode: int | str | None = None,
        status: int | None = None,
        network: str = "http",
    ) -> None:
        super().__init__(str(kind), redact(str(reason)), code, subcode, status, str(network))

    @classmethod
    def from_verdict(cls: type[_E], verdict: Verdict) -> _E:
        return cls(verdict.kind.value, verdict.reason, verdict.code, verdict.subcode, verdict.status, verdict.network)

    @property
    def verdict(self) -> Verdict:
        """The verdict again (without ``retry_after``, which is stale once raised)."""
        kind, reason, code, subcode, status, network = self.args
        return Verdict(VerdictKind(kind), reason, None, code, subcode, status, network)

    def __str__(self) -> str:
        kind, reason, code, subcode, status, network = self.args
        codes = "/".join(str(c) for c in (code, subcode) if c is not None)
        details = ", ".join(x for x in (f"code {codes}" if codes else "", f"HTTP {status}" if status else "") if x)
        return f"{network} {kind}: {reason}" + (f" ({details})" if details else "")


class CallFailed(VerdictError):
    """Retrying cannot help: a missing permission, a missing object, a request to fix."""


class AuthInvalid(CallFailed):
    """The credentials are no longer valid; the account must authorize again."""


class CallDeferred(VerdictError):
    """The call may work later: what a retry records, and what is raised when retries run out."""


def transport_errors() -> tuple[type[BaseException], ...]:
    """Exception types of a request that got no response and may work if repeated.

    The standard library's timeouts and connection errors, plus those of ``requests`` and
    ``httpx`` when the application has imported them: an exception of a library's type can
    only exist once the library is imported, so neither is ever imported here.
    """
    kinds: list[type[BaseException]] = [TimeoutError, ConnectionError]
    requests = sys.modules.get("requests")
    if requests is not None:
        exceptions = requests.exceptions
        kinds += [exceptions.Timeout, exceptions.ConnectionError, exceptions.ChunkedEncodingError]
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        kinds += [httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError]
    return tuple(kinds)


def response_parts(response: Any) -> tuple[Any, Any, Any]:
    """``(status, headers, body)`` of a ``requests`` or ``httpx`` response, or anything alike."""
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(response, "status", None)
    try:
        body = getattr(response, "content", None)
    except RuntimeError:  # a streamed body never read (httpx.ResponseNotRead) or already consumed
        body = None
    return status, getattr(response, "headers", None), body


def is_response(value: Any) -> bool:
    """True for objects shaped like an HTTP response (a status and headers)."""
    has_status = getattr(value, "status_code", None) is not None or getattr(value, "status", None) is not None
    return value is not None and has_status and hasattr(value, "headers")


class HTTPTask(DLXTask):
    """Task base class for calls to an HTTP API; subclasses set :attr:`network`.

    The waits are tenacity wait strategies (compose them with ``+``), asked with the attempt
    number and the :class:`CallDeferred` being retried, so a custom wait can read its
    ``verdict``.
    """

    abstract = True
    #: Which classifier reads this task's responses (see :mod:`celery_dlx.classify`).
    network: ClassVar[str] = "http"
    #: Backoff for RETRY_SOON (and for ``self.retry()`` without a countdown).
    retry_wait: WaitStrategy | None = wait_exponential(multiplier=1, min=1, max=300) + wait_random(0, 1)
    #: Backoff for OVER_CAPACITY: the service is overloaded, so back off harder.
    over_capacity_wait: WaitStrategy = wait_exponential(multiplier=30, min=30, max=3600) + wait_random(0, 10)
    #: Backoff for RATE_LIMITED when the response does not say when the limit resets.
    rate_limit_wait: WaitStrategy = wait_exponential(multiplier=60, min=60, max=3600) + wait_random(0, 10)
    #: Added to a known reset time so throttled tasks do not all return at the same instant.
    #: Negative values count as 0: a task never comes back before the reset.
    rate_limit_jitter: WaitStrategy = wait_random(0, 2)
    #: Circuit breaker: None uses the app's (``dlx_breaker*`` settings; none without Redis),
    #: False none, or a :class:`~celery_dlx.breaker.Breaker` of this class's own.
    breaker: ClassVar[Breaker | bool | None] = None
    #: This class's breaker policy; None: the app's for the breaker's name.
    breaker_policy: ClassVar[Policy | None] = None
    #: Give the endpoint a breaker of its own (``"facebook:insights"``); None: one per network.
    breaker_endpoint: ClassVar[str | None] = None
    #: Failures parked for a later replay instead of only failing (with ``dlx_park`` on).
    park_verdicts: ClassVar[frozenset[VerdictKind]] = frozenset(
        {VerdictKind.AUTH_INVALID, VerdictKind.PERMISSION, VerdictKind.BAD_REQUEST}
    )
    #: How often one message may be retried with a refreshed token (:meth:`on_token_expired`);
    #: past it, an API that keeps saying "expired" is treated as a dead token.
    max_token_refreshes: ClassVar[int] = 3

    def breaker_name(self) -> str:
        """Name of the breaker this run is under: the network, or ``network:endpoint``.
        Override it to choose per call (``self.request.kwargs`` are available)."""
        return f"{self.network}:{self.breaker_endpoint}" if self.breaker_endpoint else self.network

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Ask the circuit breaker first: while it is open, defer through the broker."""
        super().before_start(task_id, args, kwargs)
        if self.breaker is not False:
            own = self.breaker if isinstance(self.breaker, Breaker) else None
            breakers.guard(self, self.breaker_name(), self.breaker_policy, breaker=own)

    def after_return(self, *args: Any, **kwargs: Any) -> None:
        try:
            breakers.finish(self)
        finally:
            super().after_return(*args, **kwargs)

    def on_retry(self, *args: Any, **kwargs: Any) -> None:
        """A run that ends in a retry (a rate limiter's deferral, a retried failure) gives its
        probe back here: Celery does not call ``after_return`` for retried runs."""
        try:
            breakers.finish(self)
        finally:
            super().on_retry(*args, **kwargs)

    def classify_response(self, response: Any) -> Verdict:
        """The verdict of this task's network on ``response``."""
        return classify(self.network, *response_parts(response))

    def check(self, response: Any, verdict: Verdict | None = None) -> Any:
        """Return ``response`` if it succeeded; otherwise retry or fail as its verdict says.

        Pass ``verdict`` when the caller already classified ``response`` (to feed a rate
        limiter, say), so it is not classified twice."""
        if verdict is None:
            verdict = self.classify_response(response)
        if verdict.kind is VerdictKind.OK:
            breakers.report(self, verdict)
            return response
        self.act(verdict)

    def handle_exception(self, exc: BaseException) -> NoReturn:
        """Retry or fail for an exception of an HTTP call.

        An error carrying a response (``raise_for_status()``) is classified like that
        response; a timeout or connection error is retried soon; anything else is re-raised.
        """
        response = getattr(exc, "response", None)
        if is_response(response):
            verdict = self.classify_response(response)
            if verdict.kind is not VerdictKind.OK:
                self.act(verdict)
        elif isinstance(exc, transport_errors()):
            self.act(
                Verdict(VerdictKind.RETRY_SOON, redact(f"{type(exc).__name__}: {exc}")[:300], network=self.network)
            )
        raise exc

    def act(self, verdict: Verdict) -> NoReturn:
        """Retry, or fail with the exception for ``verdict``; never returns."""
        if verdict.kind is VerdictKind.OK:
            raise ValueError("act() needs a failure verdict, got OK")
        breakers.report(self, verdict)
        if verdict.kind.retryable:
            self._retry(verdict)
        if verdict.kind is VerdictKind.AUTH_INVALID:
            if verdict.refreshable and self.token_refreshes() < self.max_token_refreshes and self.on_token_expired(verdict):
                self._retry_refreshed(verdict)
            self.on_auth_invalid(verdict)
            failure: CallFailed = AuthInvalid.from_verdict(verdict)
        else:
            failure = CallFailed.from_verdict(verdict)
            logger.warning("%s[%s] fails without retry: %s", self.name, self.request.id, failure)
        if verdict.kind in self.park_verdicts:
            park(self, failure, verdict.kind.value.lower())
        raise failure from None

    def retry_delay(self, verdict: Verdict, failure: BaseException | None = None) -> float:
        """Seconds to wait before retrying after ``verdict`` (a retryable one)."""
        attempt = self.request.retries + 1
        if verdict.kind is VerdictKind.RATE_LIMITED:
            if verdict.retry_after is None:
                return wait_seconds(self.rate_limit_wait, attempt, failure)
            return verdict.retry_after + max(0.0, wait_seconds(self.rate_limit_jitter, attempt, failure))
        backoff = self.over_capacity_wait if verdict.kind is VerdictKind.OVER_CAPACITY else self.retry_wait
        waited = wait_seconds(backoff, attempt, failure) if backoff is not None else float(self.default_retry_delay)
        return max(waited, verdict.retry_after or 0.0)

    def on_token_expired(self, verdict: Verdict) -> bool:
        """Called for an AUTH_INVALID verdict that a token refresh can fix (an expired access
        token or session).  Override it to refresh the account's token (with the refresh
        token the application keeps) and return True: the task is then retried at once with
        the same arguments, so it must read the token from the application's store, not from
        its arguments.  Return False (the default) for the :meth:`on_auth_invalid` path."""
        return False

    def token_refreshes(self) -> int:
        """How many times this message was already retried with a refreshed token."""
        count = self.request.get(TOKEN_REFRESHES_HEADER)
        return count if isinstance(count, int) and not isinstance(count, bool) else 0

    def on_auth_invalid(self, verdict: Verdict) -> None:
        """Called before an AUTH_INVALID failure; override it to mark the account's token as
        bad (and stop scheduling work for it).  The default only logs."""
        logger.error(
            "%s[%s]: the %s credentials are invalid: %s", self.name, self.request.id, verdict.network, verdict.reason
        )

    def apply_async(self, args: Any = None, kwargs: Any = None, *rest: Any, **options: Any) -> Any:
        """Celery's ``apply_async`` with credentials redacted from the ``argsrepr`` and
        ``kwargsrepr`` message headers (also used by retries)."""
        amqp = self.app.amqp
        options.setdefault("argsrepr", redact(saferepr(redact_value(args or ()), amqp.argsrepr_maxsize)))
        options.setdefault("kwargsrepr", redact(saferepr(redact_value(kwargs or {}), amqp.kwargsrepr_maxsize)))
        return super().apply_async(args, kwargs, *rest, **options)

    def _retry_refreshed(self, verdict: Verdict) -> NoReturn:
        """Retry at once, through the broker, with the refresh counted in the message's
        headers but not in ``retries``: a refreshed token is not a failed attempt."""
        failure = CallDeferred.from_verdict(verdict)
        request = self.request
        count = self.token_refreshes()
        logger.info("%s[%s] %s; token refreshed, retrying now", self.name, request.id, failure)
        setattr(request, TOKEN_REFRESHES_HEADER, count + 1)  # carried into the retry's headers
        try:
            raise failure from None
        except CallDeferred:
            raise self.delayed_retry(countdown=0, exc=failure, count_attempt=False) from None
        finally:
            setattr(request, TOKEN_REFRESHES_HEADER, count or None)

    def _retry(self, verdict: Verdict) -> NoReturn:
        failure = CallDeferred.from_verdict(verdict)
        delay = self.retry_delay(verdict, failure)
        logger.info("%s[%s] %s; retrying in %.2f s", self.name, self.request.id, failure, delay)
        try:
            # Celery chains the retry to the exception being handled: make that ours, so the
            # HTTP library's exception (and the URL in its message) is not recorded with it.
            raise failure from None
        except CallDeferred:
            raise self.delayed_retry(countdown=delay, exc=failure) from None


class FacebookTask(HTTPTask):
    """Calls to the Facebook Graph API."""

    abstract = True
    network = "facebook"


class InstagramTask(HTTPTask):
    """Calls to the Instagram Graph API (or its legacy API)."""

    abstract = True
    network = "instagram"


class TwitterTask(HTTPTask):
    """Calls to the Twitter / X API, v1.1 and v2."""

    abstract = True
    network = "twitter"


class LinkedInTask(HTTPTask):
    """Calls to the LinkedIn API."""

    abstract = True
    network = "linkedin"


class RedditTask(HTTPTask):
    """Calls to the Reddit API."""

    abstract = True
    network = "reddit"


class MastodonTask(HTTPTask):
    """Calls to a Mastodon server's API."""

    abstract = True
    network = "mastodon"


class GitHubTask(HTTPTask):
    """Calls to the GitHub REST API."""

    abstract = True
    network = "github"


# The errors' public path, which a parked message records as its error type.
for _error in (VerdictError, CallFailed, AuthInvalid, CallDeferred):
    _error.__module__ = "celery_dlx.networks"
