"""The social-sync Celery app, written as an application would write it with celery_dlx.

For each account: a *start* task asks the network for the follower count (through a trickle
queue, so a batch of sign-ups does not stampede the APIs), then fans out *page* tasks (one
API call each) as a task tree; whales' pages go to a whale queue of their own.  Every call

- asks the shared rate limiter first (``acquire_or_retry``: a denied call waits in the broker);
- is checked by the network's Task base class: rate limits wait for the reset the answer
  names, 5xx and timeouts back off, an expired token is refreshed and the call retried at
  once, a dead token marks the account and fails (and, with ``dlx_park``, is parked); the
  circuit breaker stops calls during an outage;
- records the followers its page *owns* (``turn_page``) in a Redis set per account, and counts
  them, so the demo can check exactly-once: no follower missing, none twice.

Configuration comes from the environment (:class:`Config`), so the demo and its worker
subprocesses build the same app: ``celery -A examples.social_sync.app:app worker``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import redis
import requests
from celery import Celery
from celery.canvas import group
from kombu import Queue
from tenacity import wait_exponential, wait_random

from celery_dlx import (
    BreakerOpen,
    FacebookTask,
    HTTPTask,
    LinkedInTask,
    Page,
    PageTask,
    TwitterTask,
    VerdictError,
    spawn,
)
from celery_dlx.breaker import Policy
from celery_dlx.classify import Verdict, VerdictKind
from celery_dlx.pagination.plans import Guards
from celery_dlx.queues import network_queues, route_by_network, route_by_size, trickle_limit, work_queue
from celery_dlx.ratelimit import AdaptiveRate, Limit, Limiter, RedisStorage, Throttled, acquire_or_retry
from celery_dlx.signals import retry_published
from celery_dlx.softlimit.http_session import TimedSession

from .clients import Call, FacebookAPI, FollowersAPI, LinkedInAPI, TwitterAPI
from .roster import NETWORKS
from .simulator import QUOTAS, REFRESH_PATH

#: Networks whose per-token quota is published; the limiter enforces it as the (simulated)
#: network documents it in ``QUOTAS``, as an app would copy it from the API's documentation.
PUBLISHED_QUOTAS = ("twitter", "linkedin")
#: Facebook's per-token quota is dynamic and unpublished: learned from its answers (calls/s).
FACEBOOK_TOKEN_RATE = AdaptiveRate(initial=4.0, floor=0.5, ceiling=20.0, recover=20, burst=2)
#: At most this many start tasks leave the trickle queue, whatever the number of workers.
TRICKLE_RATE = "4/second"
#: The simulator's outages last seconds: open quickly, probe again after 2 s.
BREAKER_POLICY = Policy(threshold=6, window=5.0, open_for=2.0, max_open_for=8.0, probe_wait=1.0)


@dataclass(frozen=True)
class Config:
    """Where the app runs: its prefix (dlx_prefix, queue names, Redis keys), the API's base URL,
    the follower count from which an account is a whale, and the broker and Redis URLs."""

    prefix: str
    api_url: str
    whale_threshold: int
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    redis_url: str = "redis://127.0.0.1:6379/0"

    ENV: ClassVar[dict[str, str]] = {
        "prefix": "SOCIAL_SYNC_PREFIX",
        "api_url": "SOCIAL_SYNC_API",
        "whale_threshold": "SOCIAL_SYNC_WHALE_THRESHOLD",
        "broker_url": "SOCIAL_SYNC_BROKER",
        "redis_url": "SOCIAL_SYNC_REDIS",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        values: dict[str, Any] = {name: environ[var] for name, var in cls.ENV.items() if var in environ}
        values["whale_threshold"] = int(values["whale_threshold"])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        return {var: str(getattr(self, name)) for name, var in self.ENV.items()}

    def queue(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def whale_queue(self) -> str:
        return self.queue("whales")

    @property
    def trickle_queue(self) -> str:
        return self.queue("trickle")

    def queues(self) -> list[Queue]:
        """One queue per network, the whale queue and the trickle queue."""
        return [
            *network_queues(NETWORKS, prefix=f"{self.prefix}."),
            work_queue(self.whale_queue),
            work_queue(self.trickle_queue),
        ]

    def key(self, *parts: str) -> str:
        """A Redis key of this deployment."""
        return ":".join((self.prefix, *parts))


class Services:
    """What the tasks of one app share in a process: Redis, the rate limiter, an HTTP session."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = redis.Redis.from_url(config.redis_url, decode_responses=True)
        self.limiter = limiter_for(config)
        # Reads give up after 2 s (the simulator's slow answers take longer); the soft limit bounds them too.
        self.http = TimedSession(connect=2.0, read=2.0, margin=1.0)

    @staticmethod
    @functools.cache
    def of(app: Celery) -> Services:
        """The services of ``app`` in this process (built on first use, after the fork)."""
        return Services(app.conf.social_sync)

    def token(self, account_id: str) -> str:
        return str(self.store.hget(self.config.key("tokens"), account_id) or "")

    def replace_token(self, account_id: str, token: str) -> None:
        """Store a refreshed token; every later call of the account uses it."""
        with self.store.pipeline(transaction=True) as pipe:
            pipe.hset(self.config.key("tokens"), account_id, token)
            pipe.hincrby(self.config.key("refreshed"), account_id, 1)
            pipe.execute()

    def mark_bad(self, account_id: str, reason: str) -> None:
        self.store.hset(self.config.key("bad_tokens"), account_id, reason)

    def record(self, account_id: str, follower_ids: list[str]) -> None:
        """Upsert a page's followers; count them, so processing one twice would show."""
        with self.store.pipeline(transaction=True) as pipe:
            if follower_ids:
                pipe.sadd(self.config.key("synced", account_id), *follower_ids)
            pipe.hincrby(self.config.key("processed"), account_id, len(follower_ids))
            pipe.execute()

    def count_retry(self, reason: str) -> None:
        self.store.hincrby(self.config.key("retries"), reason)


def limiter_for(config: Config) -> Limiter:
    """The shared rate limiter of ``config``'s deployment (state in its Redis)."""
    return Limiter(RedisStorage.from_url(config.redis_url), _limits(config), prefix=config.key("ratelimit"))


def _limits(config: Config) -> list[Limit]:
    """The trickle queue's rate, and the per-token quotas: learned for Facebook, as published
    for the others."""
    return [
        trickle_limit(config.trickle_queue, TRICKLE_RATE),
        Limit("facebook-token", FACEBOOK_TOKEN_RATE, by=("token",), where={"network": "facebook"}),
        *(
            Limit(f"{network}-token", str(QUOTAS[network].token), by=("token",), where={"network": network})
            for network in PUBLISHED_QUOTAS
        ),
    ]


class SocialTask(HTTPTask):
    """What every call of this app does (subclasses add the network).  Every task takes the
    account id as its first argument."""

    abstract = True
    api: ClassVar[FollowersAPI]
    max_retries = 20
    soft_time_limit = 20
    time_limit = 30
    # The simulator's limits and outages last seconds, so the waits are seconds too.
    retry_wait = wait_exponential(multiplier=0.5, min=0.5, max=10) + wait_random(0, 0.5)
    rate_limit_wait = wait_exponential(multiplier=1, min=2, max=20) + wait_random(0, 1)
    over_capacity_wait = wait_exponential(multiplier=1, min=2, max=20) + wait_random(0, 1)
    rate_limit_jitter = wait_random(0, 0.5)

    def fetch(self, account_id: str, call: Call) -> Any:
        """GET ``call`` with the account's token, once the limiter admits it; the JSON answer,
        or a retry / failure as the network's verdict says.  Whether the API rate-limited the
        call is fed back to the limiter (it adapts the limits it learns)."""
        services = Services.of(self.app)
        decision = acquire_or_retry(self, services.limiter, network=self.network, token=account_id)
        try:
            response = services.http.get(
                services.config.api_url + call.path,
                params=call.params,
                headers={"Authorization": f"Bearer {services.token(account_id)}"},
            )
        except requests.RequestException as exc:
            self.handle_exception(exc)
        verdict = self.classify_response(response)
        limited = verdict.kind is VerdictKind.RATE_LIMITED
        services.limiter.feedback(decision, limited=limited, retry_after=verdict.retry_after if limited else None)
        return self.check(response, verdict).json()

    def on_token_expired(self, verdict: Verdict) -> bool:
        """Refresh the account's token at the token endpoint; True (retry at once) when it
        issued a new one, False (a dead token) when it refused, e.g. ``invalid_grant``."""
        services = Services.of(self.app)
        account_id = self.request.args[0]
        try:
            response = services.http.get(services.config.api_url + REFRESH_PATH, params={"account": account_id})
        except requests.RequestException as exc:
            self.handle_exception(exc)
        if self.classify_response(response).kind is not VerdictKind.OK:
            return False
        services.replace_token(account_id, response.json()["access_token"])
        return True

    def on_auth_invalid(self, verdict: Verdict) -> None:
        """Mark the account's token as dead, so nothing else is scheduled with it."""
        super().on_auth_invalid(verdict)
        Services.of(self.app).mark_bad(self.request.args[0], verdict.reason)


class FacebookSync(SocialTask, FacebookTask):
    abstract = True
    api = FacebookAPI()


class TwitterSync(SocialTask, TwitterTask):
    abstract = True
    api = TwitterAPI()


class LinkedInSync(SocialTask, LinkedInTask):
    abstract = True
    api = LinkedInAPI()


class FacebookPages(PageTask, FacebookSync):
    abstract = True


class TwitterPages(PageTask, TwitterSync):
    abstract = True


class LinkedInPages(PageTask, LinkedInSync):
    abstract = True


#: Per network: the base class of its start task and of its page tasks.
BASES: dict[str, tuple[type[SocialTask], type[SocialTask]]] = {
    "facebook": (FacebookSync, FacebookPages),
    "twitter": (TwitterSync, TwitterPages),
    "linkedin": (LinkedInSync, LinkedInPages),
}


def start_task_name(network: str) -> str:
    return f"social.{network}.start"


def page_task_name(network: str) -> str:
    return f"social.{network}.page"


def make_app(config: Config) -> Celery:
    """The app for ``config``: queues, routes, celery_dlx settings and the tasks."""
    app = Celery("social_sync", broker=config.broker_url, backend=config.redis_url, set_as_current=False)
    app.conf.update(
        social_sync=config,
        dlx_prefix=config.prefix,
        dlx_tracking_ttl=3600,
        dlx_breaker_prefix=config.key("breaker"),
        dlx_breaker_policy=BREAKER_POLICY,
        dlx_park=True,  # the default: dead tokens and exhausted retries go to <prefix>.parking
        dlx_metrics_prefix=config.key("metrics"),  # counters (celery_dlx.metrics) under the run's keys
        dlx_metrics_limiters=[limiter_for(config)],  # rate-limit usage in the metrics
        task_queues=config.queues(),
        task_default_queue=config.trickle_queue,
        task_routes=[
            {start_task_name("*"): {"queue": config.trickle_queue}},
            route_by_size("followers", config.whale_threshold, config.whale_queue, tasks=map(page_task_name, NETWORKS)),
            route_by_network(prefix=f"{config.prefix}."),
        ],
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    for network in NETWORKS:
        _register(app, *BASES[network])
    _count_retries(app)
    return app


def _register(app: Celery, start_base: type[SocialTask], page_base: type[SocialTask]) -> None:
    """Register the start task and the page task of ``start_base``'s network."""
    network = start_base.network

    @app.task(bind=True, base=page_base, name=page_task_name(network), shared=False, page_guards=Guards(max_pages=1000))
    def sync_page(self: Any, account_id: str, page: Page, followers: int) -> int:
        """Fetch one page, launch the next ones, store the followers this page owns."""
        ids, cursor = self.api.items(self.fetch(account_id, self.api.page(account_id, page)))
        owned = self.turn_page(page, ids, cursor=cursor)
        Services.of(self.app).record(account_id, owned)
        return len(owned)

    @app.task(bind=True, base=start_base, name=start_task_name(network), shared=False)
    def start_sync(self: Any, account_id: str) -> dict[str, Any]:
        """Read the follower count, then fan out the page tasks in this task's tree (the count
        also routes a whale's pages to the whale queue).  Returns the pagination run (the key
        of its page ledger) and the count."""
        followers = self.api.follower_count(self.fetch(account_id, self.api.profile(account_id)))
        canvas = self.api.pages(sync_page.s(account_id, followers=followers), followers)
        pages = list(canvas.tasks) if isinstance(canvas, group) else [canvas]
        spawn(self, pages)
        return {"run": Page.from_message(pages[0].kwargs["page"]).run, "followers": followers}


def retry_reason(exc: BaseException | None) -> str:
    """Why a retry was published: ``limiter``, ``breaker``, or the API's verdict kind."""
    if isinstance(exc, Throttled):
        return "limiter"
    if isinstance(exc, BreakerOpen):
        return "breaker"
    if isinstance(exc, VerdictError):
        return exc.verdict.kind.value.lower()
    return type(exc).__name__.lower() if exc is not None else "retry"


def _count_retries(app: Celery) -> None:
    """Count every retry of this app's tasks in Redis, by reason (celery_dlx's signal)."""

    def on_retry(sender: Any = None, exc: BaseException | None = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            Services.of(app).count_retry(retry_reason(exc))

    retry_published.connect(on_retry, weak=False)


app = make_app(Config.from_env(os.environ)) if Config.ENV["prefix"] in os.environ else None
