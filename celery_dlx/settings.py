"""celery_dlx settings, read from the Celery app's configuration.

Pure: takes any mapping (``app.conf`` is one), so it is tested without Celery.  Every key is
prefixed ``dlx_`` and optional.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .broker.plan import DEFAULT_LEVELS, DEFAULT_PRECISION, DEFAULT_UNIT_MS, DelayLevels
from .errors import ConfigurationError

QUEUE_TYPES = ("classic", "quorum")
#: Environment variable that marks a test process; only there may delays be time-scaled.
TEST_MODE_ENV = "CELERY_DLX_TEST_MODE"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
#: Default most messages the parking lot keeps (``dlx_parking_max_messages``); README justifies it.
DEFAULT_PARKING_MAX_MESSAGES = 100_000
#: Default longest stay in the parking lot, in seconds (``dlx_parking_max_age``): 30 days.
DEFAULT_PARKING_MAX_AGE = 30 * 86400


@dataclass(frozen=True)
class Settings:
    """What celery_dlx needs to know to build and use its broker topology.

    - ``prefix`` (``dlx_prefix``): first word of every entity name, so several apps or test
      runs can share a broker.
    - ``queue_type`` (``dlx_queue_type``): ``classic`` or ``quorum`` for the delay and parking
      queues.  Quorum queues dead-letter at-least-once; classic ones at-most-once.
    - ``levels`` (``dlx_unit_ms``, ``dlx_levels``, ``dlx_precision``): the delay ladder, and how
      late relative to its delay a retry may arrive to save dead-letter hops (default 1/8; 0 is
      exact to the unit).  ``levels.plan(delay)`` is the route of a delay.
    - ``confirm_timeout`` (``dlx_confirm_timeout``): seconds to wait for the broker to confirm a
      retry before the retry counts as failed.
    - ``auto_declare`` (``dlx_auto_declare``): declare the topology the first time a process
      publishes a retry (idempotent; a mismatch raises :class:`~celery_dlx.errors.TopologyMismatch`).
    - ``time_scale`` (``dlx_time_scale``): factor applied to every delay, so a 15-minute retry
      takes about a second in a test.  Anything but 1 is refused unless the environment has
      ``CELERY_DLX_TEST_MODE=1`` (set by the pytest plugin's fixtures), so it cannot slip into
      production.
    - ``park`` (``dlx_park``): publish a task that ran out of retries, or whose failure no
      retry can fix, to the parking queue before it fails (see :mod:`celery_dlx.parking.park`).
    - ``parking_max_messages`` (``dlx_parking_max_messages``) and ``parking_max_age``
      (``dlx_parking_max_age``, seconds): the parking lot's retention, declared on the parking
      queue as ``x-max-length`` (with ``x-overflow: drop-head``: the oldest message goes) and
      ``x-message-ttl``.  ``None`` or ``0`` means no limit; both ``None`` keeps everything, as
      before these settings existed.  Without a bound, leftovers nobody replays (test runs,
      abandoned accounts) pile up until the broker's memory alarm stops every publisher.
    """

    prefix: str = "celery_dlx"
    queue_type: str = "classic"
    levels: DelayLevels = field(default_factory=DelayLevels)
    confirm_timeout: float = 30.0
    auto_declare: bool = True
    time_scale: float = 1.0
    park: bool = True
    parking_max_messages: int | None = DEFAULT_PARKING_MAX_MESSAGES
    parking_max_age: float | None = DEFAULT_PARKING_MAX_AGE

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX_RE.match(self.prefix):
            raise ConfigurationError(
                f"dlx_prefix must be 1-100 characters of letters, digits and _ . : -, got {self.prefix!r}"
            )
        if self.queue_type not in QUEUE_TYPES:
            raise ConfigurationError(f"dlx_queue_type must be one of {QUEUE_TYPES}, got {self.queue_type!r}")
        timeout = self.confirm_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
            raise ConfigurationError(f"dlx_confirm_timeout must be a positive number of seconds, got {timeout!r}")
        scale = self.time_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            raise ConfigurationError(f"dlx_time_scale must be a number in (0, 1], got {scale!r}")
        self._check_parking_retention()

    def _check_parking_retention(self) -> None:
        """Refuse retention values RabbitMQ would refuse or misread; ``0`` becomes ``None``.

        RabbitMQ takes ``x-max-length: 0`` as "keep nothing", which nobody means by a parking
        lot, so 0 is read as "no limit" like ``None``.  Fractions of a message, negative or
        non-finite values are mistakes worth stopping at start-up, not at the first park.
        """
        most = self.parking_max_messages
        if most is not None and (isinstance(most, bool) or not isinstance(most, int) or most < 0):
            raise ConfigurationError(
                f"dlx_parking_max_messages must be a whole number of messages >= 0 (0 or None: no limit), got {most!r}"
            )
        age = self.parking_max_age
        if age is not None and (
            isinstance(age, bool) or not isinstance(age, (int, float)) or not math.isfinite(age) or age < 0
        ):
            raise ConfigurationError(
                f"dlx_parking_max_age must be a number of seconds >= 0 (0 or None: no limit), got {age!r}"
            )
        if age is not None and 0 < age < 0.001:
            raise ConfigurationError(f"dlx_parking_max_age is kept in whole milliseconds: at least 0.001 s, got {age!r}")
        object.__setattr__(self, "parking_max_messages", most or None)
        object.__setattr__(self, "parking_max_age", age or None)

    @property
    def parking_max_age_ms(self) -> int | None:
        """``parking_max_age`` as RabbitMQ's ``x-message-ttl`` (whole ms, rounded up: never early)."""
        return None if self.parking_max_age is None else math.ceil(self.parking_max_age * 1000)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Settings:
        """Read the ``dlx_*`` keys of a Celery configuration mapping.

        ``environ`` decides whether this is a test process (``dlx_time_scale`` is refused
        elsewhere).
        """
        scale = conf.get("dlx_time_scale", 1.0)
        if scale != 1 and environ.get(TEST_MODE_ENV) != "1":
            raise ConfigurationError(
                f"dlx_time_scale={scale!r} shrinks every retry delay and is for tests only: it is refused "
                f"unless {TEST_MODE_ENV}=1 (the celery_dlx pytest fixtures set it). Remove it from this configuration."
            )
        try:
            levels = DelayLevels(
                unit_ms=conf.get("dlx_unit_ms", DEFAULT_UNIT_MS),
                levels=conf.get("dlx_levels", DEFAULT_LEVELS),
                precision=conf.get("dlx_precision", DEFAULT_PRECISION),
            )
        except ValueError as exc:
            raise ConfigurationError(f"dlx_unit_ms / dlx_levels / dlx_precision: {exc}") from exc
        return cls(
            prefix=conf.get("dlx_prefix", "celery_dlx"),
            queue_type=conf.get("dlx_queue_type", "classic"),
            levels=levels,
            confirm_timeout=conf.get("dlx_confirm_timeout", 30.0),
            auto_declare=bool(conf.get("dlx_auto_declare", True)),
            time_scale=scale,
            park=bool(conf.get("dlx_park", True)),
            parking_max_messages=conf.get("dlx_parking_max_messages", DEFAULT_PARKING_MAX_MESSAGES),
            parking_max_age=conf.get("dlx_parking_max_age", DEFAULT_PARKING_MAX_AGE),
        )
