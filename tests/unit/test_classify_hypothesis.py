"""``classify`` never raises, whatever a server, a proxy or a caller hands it, and bodies it
cannot read leave the decision to the generic HTTP rules."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_dlx.classify import VerdictKind, classify, registry

NETWORKS = st.sampled_from(registry.names)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=30,
)
#: Values found where a network keeps its codes, so generated bodies hit the real rules.
known_keys = st.sampled_from(
    [
        "error",
        "errors",
        "code",
        "error_subcode",
        "message",
        "type",
        "detail",
        "serviceErrorCode",
        "json",
        "meta",
        "data",
    ]
)
shaped_bodies = st.dictionaries(known_keys, json_values, max_size=5)
bodies = (
    st.binary(max_size=2000)
    | st.text(max_size=2000)
    | json_values
    | shaped_bodies
    | shaped_bodies.map(json.dumps)
    | st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(0, 5000))  # deep nesting
    | st.builds(object)
)
header_names = st.sampled_from(
    [
        "date",
        "retry-after",
        "x-rate-limit-reset",
        "x-rate-limit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-remaining",
        "ratelimit-reset",
        "x-business-use-case-usage",
        "x-app-usage",
        "x-ad-account-usage",
        "x-user-limit-24hour-reset",
        "x-user-limit-24hour-remaining",
        "www-authenticate",
        "location",
    ]
) | st.text(max_size=20)
header_values = (
    st.text(max_size=200)
    | st.integers().map(str)
    | st.floats().map(str)
    | st.binary(max_size=50)
    | json_values.map(json.dumps)
    | st.integers()
    | st.none()
)
headers = (
    st.dictionaries(header_names, header_values, max_size=8)
    | st.lists(st.tuples(header_names, header_values), max_size=8)
    | st.none()
    | st.integers()
    | st.text(max_size=20)
)
statuses = st.integers(-10, 1100) | st.none() | st.text(max_size=5) | st.floats() | st.booleans()


def _is_sane(verdict: object) -> bool:
    retry_after = verdict.retry_after  # type: ignore[attr-defined]
    return retry_after is None or (isinstance(retry_after, float) and math.isfinite(retry_after) and retry_after >= 0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NETWORKS, statuses, headers, bodies, st.floats(0, 4e9))
def test_classify_never_raises(network: str, status: object, headers: object, body: object, now: float) -> None:
    verdict = classify(network, status, headers, body, now=now)
    assert isinstance(verdict.kind, VerdictKind)
    assert verdict.network == network
    assert _is_sane(verdict)
    json.dumps(verdict.as_dict())


@settings(max_examples=50, deadline=None)
@given(NETWORKS, st.integers(100, 599))
def test_huge_inputs_are_handled(network: str, status: int) -> None:
    huge_headers = {"x-business-use-case-usage": "[" * 100_000, "retry-after": "9" * 100_000}
    verdict = classify(network, status, huge_headers, b"{" + b"x" * 3_000_000)
    assert _is_sane(verdict)


#: Statuses whose meaning a network documents differently from the generic rules.
NETWORK_STATUSES = {
    "twitter": {420: VerdictKind.RATE_LIMITED, 503: VerdictKind.OVER_CAPACITY},
    "mastodon": {206: VerdictKind.RETRY_SOON},
    "linkedin": {426: VerdictKind.BAD_REQUEST},
}


def _generic_kind(status: int) -> VerdictKind:
    """The generic rules, restated: what an unreadable body leaves to the status."""
    if status in (404, 410, 451):
        return VerdictKind.NOT_FOUND
    named = {
        401: VerdictKind.AUTH_INVALID,
        403: VerdictKind.PERMISSION,
        408: VerdictKind.RETRY_SOON,
        429: VerdictKind.RATE_LIMITED,
    }
    if status in named:
        return named[status]
    if status >= 500:
        return VerdictKind.RETRY_SOON
    return VerdictKind.BAD_REQUEST if status >= 400 else VerdictKind.OK


@settings(max_examples=300, deadline=None)
@given(NETWORKS, st.integers(100, 599), st.binary(max_size=300).filter(lambda b: b.lstrip()[:1] not in (b"{", b"[")))
def test_unreadable_bodies_fall_back_to_the_generic_rules(network: str, status: int, body: bytes) -> None:
    verdict = classify(network, status, {}, body)
    expected = NETWORK_STATUSES.get(network, {}).get(status, _generic_kind(status))
    if network == "reddit" and status == 503 and b"servers are busy" in body.lower():
        expected = VerdictKind.OVER_CAPACITY
    if network == "github" and status == 403 and b"user agent" in body.lower():
        expected = VerdictKind.BAD_REQUEST
    assert verdict.kind is expected
