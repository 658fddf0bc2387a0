"""The classification API: verdicts, composition, the registry, input shapes and timing."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import httpx
import pytest
import requests.structures

from celery_dlx.classify import (
    BodyError,
    Dialect,
    Registry,
    Response,
    Verdict,
    VerdictKind,
    classifier,
    classify,
    code_table,
    facebook,
    http,
    registry,
    rule,
)
from celery_dlx.classify.base import MAX_BODY
from celery_dlx.classify.linkedin import until_midnight_utc

DATE = "Tue, 14 Nov 2023 22:13:20 GMT"  # 1_700_000_000
T0 = 1_700_000_000.0
K = VerdictKind


def test_verdict_kinds_are_exactly_the_documented_names() -> None:
    assert {k.name for k in VerdictKind} == {
        "OK",
        "RETRY_SOON",
        "RATE_LIMITED",
        "AUTH_INVALID",
        "PERMISSION",
        "NOT_FOUND",
        "BAD_REQUEST",
        "OVER_CAPACITY",
    }
    assert {k for k in VerdictKind if k.retryable} == {K.RETRY_SOON, K.RATE_LIMITED, K.OVER_CAPACITY}


def test_verdict_as_dict_is_json() -> None:
    verdict = classify("facebook", 400, {}, {"error": {"code": 190, "error_subcode": 463, "message": "expired"}})
    assert json.loads(json.dumps(verdict.as_dict())) == {
        "kind": "AUTH_INVALID",
        "reason": "expired",
        "retry_after": None,
        "code": 190,
        "subcode": 463,
        "status": 400,
        "network": "facebook",
        "refreshable": True,
        "rule": "facebook code: (None, 463)",
    }


@pytest.mark.parametrize(
    "status, kind",
    [
        (200, K.OK),
        (301, K.OK),
        (401, K.AUTH_INVALID),
        (403, K.PERMISSION),
        (404, K.NOT_FOUND),
        (410, K.NOT_FOUND),
        (429, K.RATE_LIMITED),
        (400, K.BAD_REQUEST),
        (418, K.BAD_REQUEST),
        (500, K.RETRY_SOON),
        (503, K.RETRY_SOON),
        (599, K.RETRY_SOON),
    ],
)
def test_generic_rules_follow_the_status(status: int, kind: VerdictKind) -> None:
    assert classify("http", status, {}, None).kind is kind


def test_unknown_shapes_of_a_network_fall_back_to_the_status() -> None:
    odd_body = {"errors": "not a list", "error": ["nor", "an", "object"]}
    for network in registry.names:
        assert classify(network, 404, {}, odd_body).kind is K.NOT_FOUND
        assert classify(network, 500, {}, "<html>oops</html>").kind is K.RETRY_SOON


def test_status_may_come_as_text_and_nonsense_status_is_retried() -> None:
    assert classify("http", "404", {}, None).kind is K.NOT_FOUND
    for status in (None, 0, 42, 1000, "abc", 4.04, True, "²", "--5", "-404", " "):
        assert classify("http", status, {}, None).kind is K.RETRY_SOON


def test_a_rule_that_matches_wins_and_one_that_does_not_falls_through() -> None:
    seen: list[str] = []

    @rule
    def teapot(response: Response) -> Verdict | None:
        seen.append("teapot")
        return Verdict(K.OVER_CAPACITY, "brewing") if response.status == 418 else None

    composed = teapot | http.rules
    assert composed(Response.of(418, {}, None)).kind is K.OVER_CAPACITY  # type: ignore[union-attr]
    assert composed(Response.of(404, {}, None)).kind is K.NOT_FOUND  # type: ignore[union-attr]
    assert seen == ["teapot", "teapot"]


def test_composition_is_flat_and_ordered() -> None:
    first = rule(lambda r: None)
    second = rule(lambda r: Verdict(K.BAD_REQUEST, "second"))
    third = rule(lambda r: Verdict(K.NOT_FOUND, "third"))
    composed = first | second | third
    assert composed.parts == (first, second, third)  # type: ignore[attr-defined]
    assert composed(Response.of(200, {}, None)).reason == "second"  # type: ignore[union-attr]


def _facebook_registry() -> Registry:
    fresh = Registry()
    fresh.register("facebook", facebook.rules | http.rules, facebook.DIALECT)
    return fresh


def test_override_one_code_keeps_the_networks_timing_and_the_rest() -> None:
    fresh = _facebook_registry()
    body = {"error": {"code": 368, "message": "blocked"}}
    assert fresh.classify("facebook", 400, {}, body).kind is K.RATE_LIMITED
    fresh.override("facebook", 368, K.PERMISSION)
    assert fresh.classify("facebook", 400, {}, body).kind is K.PERMISSION
    # Overriding to a retryable kind reads the wait the Facebook way (usage headers, minutes).
    fresh.override("facebook", 100, K.RATE_LIMITED)
    usage = {"x-app-usage": '{"call_count": 100, "estimated_time_to_regain_access": 2}'}
    verdict = fresh.classify("facebook", 400, usage, {"error": {"code": 100, "message": "x"}})
    assert (verdict.kind, verdict.retry_after) == (K.RATE_LIMITED, 120.0)
    assert fresh.classify("facebook", 400, {}, {"error": {"code": 190}}).kind is K.AUTH_INVALID
    # The default registry is untouched.
    assert classify("facebook", 400, {}, body).kind is K.RATE_LIMITED


def test_override_by_code_and_subcode_only_matches_that_pair() -> None:
    fresh = _facebook_registry()
    fresh.override("facebook", 100, K.NOT_FOUND, subcode=1487390)
    assert fresh.classify("facebook", 400, {}, {"error": {"code": 100, "error_subcode": 1487390}}).kind is K.NOT_FOUND
    assert fresh.classify("facebook", 400, {}, {"error": {"code": 100, "error_subcode": 7}}).kind is K.BAD_REQUEST


def test_register_a_new_network() -> None:
    fresh = Registry()

    def error(response: Response) -> BodyError | None:
        name = response.get("error")
        return BodyError(name, None, str(response.get("message") or "")) if isinstance(name, str) else None

    dialect = Dialect(error=error, wait=http.wait)
    fresh.register("bluesky", code_table("bluesky", dialect, {"ExpiredToken": K.AUTH_INVALID}) | http.rules, dialect)
    expired = fresh.classify("bluesky", 400, {}, {"error": "ExpiredToken", "message": "Token has expired"})
    assert (expired.kind, expired.code, expired.network) == (K.AUTH_INVALID, "ExpiredToken", "bluesky")
    limited = fresh.classify("bluesky", 429, {"ratelimit-reset": "12"}, {"error": "RateLimitExceeded"})
    assert (limited.kind, limited.retry_after, limited.code) == (K.RATE_LIMITED, 12.0, "RateLimitExceeded")
    fresh.override("bluesky", "InvalidRequest", K.NOT_FOUND)
    assert fresh.classify("bluesky", 400, {}, {"error": "InvalidRequest"}).kind is K.NOT_FOUND


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"unknown network 'myspace'; known: .*facebook"):
        classify("myspace", 200, {}, None)
    fresh = Registry()
    fresh.register("partial", rule(lambda r: None))
    with pytest.raises(LookupError, match="catch-all"):
        fresh.classify("partial", 200, {}, None)
    with pytest.raises(ValueError, match="without a dialect"):
        fresh.override("partial", 1, K.NOT_FOUND)
    with pytest.raises(ValueError, match="non-empty string"):
        fresh.register("", http.rules)


def test_classifier_returns_the_composed_classifier() -> None:
    verdict = classifier("twitter")(Response.of(429, {}, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}))
    assert verdict is not None and verdict.code == 88


def test_headers_in_every_shape() -> None:
    reset = {"x-rate-limit-reset": str(int(T0) + 60), "date": DATE}
    shapes = [
        reset,
        {k.upper(): v for k, v in reset.items()},
        list(reset.items()),
        [(k.encode(), v.encode()) for k, v in reset.items()],
        requests.structures.CaseInsensitiveDict(reset),
        httpx.Headers(reset),
    ]
    for headers in shapes:
        assert classify("twitter", 429, headers, None).retry_after == 60.0, headers


def test_repeated_headers_are_joined_and_odd_entries_skipped() -> None:
    response = Response.of(200, httpx.Headers([("vary", "a"), ("vary", "b")]), None)
    assert response.header("Vary") == "a, b"
    assert Response.of(200, [("ok", "1"), ("bad",), 7, (None, "x"), ("n", 3)], None).headers == {"ok": "1", "n": "3"}
    assert Response.of(200, "not headers", None).headers == {}
    assert Response.of(200, 12, None).headers == {}


def test_bodies_in_every_shape() -> None:
    graph_error = {"error": {"code": 190, "message": "expired"}}
    for body in (
        graph_error,
        json.dumps(graph_error),
        json.dumps(graph_error).encode(),
        bytearray(json.dumps(graph_error).encode()),
    ):
        assert classify("facebook", 400, {}, body).kind is K.AUTH_INVALID, body
    html = Response.of(502, {}, b"<html>\xff bad gateway</html>")
    assert html.body.startswith("<html>") and "bad gateway" in html.text


def test_a_huge_body_is_not_parsed() -> None:
    huge = json.dumps({"error": {"code": 190}, "padding": "x" * MAX_BODY})
    response = Response.of(400, {}, huge)
    assert response.get("error") is None
    assert classify("facebook", 400, {}, huge).kind is K.BAD_REQUEST


def test_retry_after_is_measured_from_the_date_header_else_from_now() -> None:
    headers = {"x-rate-limit-reset": str(int(T0) + 90)}
    dated = {**headers, "date": DATE}
    assert classify("twitter", 429, dated, None, now=T0 + 1000).retry_after == 90.0
    assert classify("twitter", 429, headers, None, now=T0 + 30).retry_after == 60.0
    assert classify("twitter", 429, {**headers, "date": "not a date"}, None, now=T0).retry_after == 90.0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("1.5", 1.5),
        ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
        ("Tuesday, 14-Nov-23 22:14:20 GMT", 60.0),  # RFC 850
        ("Tue Nov 14 22:14:20 2023", 60.0),  # asctime
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
    ],
)
def test_retry_after_values(value: str, expected: float | None) -> None:
    assert http.delay_or_date(value or None, T0) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (str(int(T0) + 30), 30.0),  # UNIX seconds
        (str(int(T0 * 1000) + 1500), 1.5),  # UNIX milliseconds
        ("45", 45.0),  # seconds to wait
        ("2023-11-14T22:14:20Z", 60.0),
        ("2023-11-14T22:14:20.250+00:00", 60.25),
        ("2023-11-14T22:14:20", 60.0),  # naive ISO means UTC
        ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
        ("1e999", None),
        ("whenever", None),
    ],
)
def test_reset_header_forms(value: str, expected: float | None) -> None:
    assert http.until_reset(value, T0) == expected


def test_linkedin_daily_reset_is_the_next_midnight_utc() -> None:
    assert until_midnight_utc(T0) == 6400.0  # 22:13:20 -> 24:00:00
    assert until_midnight_utc(T0 + 6400) == 86400.0
    assert until_midnight_utc(1e20) is None


def test_facebook_waits_for_the_longest_throttle_and_ignores_zero() -> None:
    buc = {"1": [{"estimated_time_to_regain_access": 0}], "2": [{"estimated_time_to_regain_access": 3}]}
    headers = {"x-business-use-case-usage": json.dumps(buc), "retry-after": "10"}
    assert facebook.wait(Response.of(400, headers, None)) == 180.0
    not_throttled = {"x-business-use-case-usage": json.dumps({"1": [{"estimated_time_to_regain_access": 0}]})}
    assert facebook.wait(Response.of(400, {**not_throttled, "retry-after": "10"}, None)) == 10.0
    assert facebook.wait(Response.of(400, {"x-app-usage": "{not json"}, None)) is None


def test_retry_after_is_only_given_for_kinds_worth_retrying() -> None:
    assert classify("http", 401, {"retry-after": "30"}, None).retry_after is None
    assert classify("http", 503, {"retry-after": "30"}, None).retry_after == 30.0


def test_reasons_never_carry_tokens() -> None:
    body = {
        "error": {
            "code": 100,
            "message": "Invalid URL https://graph.facebook.com/me?access_token=EAABwzLixnjYBAKZCZA12345",
        }
    }
    verdict = classify("facebook", 400, {}, body)
    assert "EAAB" not in verdict.reason and "access_token=[REDACTED]" in verdict.reason
    generic = classify("http", 400, {}, {"message": "bad header Authorization: Bearer abcdef0123456789abcdef"})
    assert "abcdef0123456789" not in generic.reason


def test_reasons_are_short() -> None:
    verdict = classify("facebook", 400, {}, {"error": {"code": 100, "message": "x" * 10_000}})
    assert len(verdict.reason) <= 300


def test_nothing_in_a_verdict_is_nan() -> None:
    verdict = classify("http", 429, {"retry-after": "NaN", "x-ratelimit-reset": "nan"}, None)
    assert verdict.retry_after is None or math.isfinite(verdict.retry_after)


def test_pure_modules_import_no_celery_kombu_or_http_library() -> None:
    package = Path(__file__).resolve().parents[2] / "celery_dlx"
    for path in [*sorted((package / "classify").glob("*.py")), package / "redact.py"]:
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {"celery", "kombu", "requests", "httpx", "urllib3"}, path


@pytest.mark.parametrize(
    "network, status, headers, body, refreshable",
    [
        ("facebook", 400, {}, {"error": {"code": 190, "error_subcode": 463, "message": "Session has expired"}}, True),
        ("facebook", 400, {}, {"error": {"code": 190, "error_subcode": 460, "message": "password changed"}}, False),
        ("facebook", 400, {}, {"error": {"code": 190, "error_subcode": 458, "message": "app not installed"}}, False),
        ("facebook", 400, {}, {"error": {"type": "OAuthException", "message": "Session has expired at unix time 1"}}, True),
        ("linkedin", 401, {}, {"serviceErrorCode": 65602, "message": "The token used in the request has expired"}, True),
        ("linkedin", 401, {}, {"serviceErrorCode": 65601, "message": "revoked by the user"}, False),
        ("twitter", 403, {}, {"errors": [{"code": 64, "message": "Your account is suspended"}]}, False),
        ("mastodon", 401, {}, {"error": "The access token expired"}, True),
        ("mastodon", 401, {}, {"error": "The access token was revoked"}, False),
        ("github", 401, {"www-authenticate": 'Bearer error="invalid_token", error_description="The access token expired"'}, "", True),
        ("reddit", 400, {}, {"error": "invalid_grant"}, False),
        ("http", 401, {}, None, False),
    ],
)
def test_auth_invalid_says_whether_a_token_refresh_can_help(
    network: str, status: int, headers: dict[str, str], body: object, refreshable: bool
) -> None:
    verdict = classify(network, status, headers, body)
    assert (verdict.kind, verdict.refreshable) == (K.AUTH_INVALID, refreshable), verdict


@pytest.mark.parametrize(
    "network, status, body",
    [
        ("twitter", 401, {"errors": [{"code": 135, "message": "Timestamp out of bounds."}]}),
        ("twitter", 400, {"errors": [{"code": 215, "message": "Bad Authentication data."}]}),
        ("linkedin", 401, {"serviceErrorCode": 401, "message": "Empty oauth2_access_token", "status": 401}),
        ("github", 401, {"message": "Requires authentication"}),
        ("facebook", 400, {"error": {"code": 104, "message": "An access token is required to request this resource."}}),
        ("http", 401, {"message": "Missing access token"}),
        ("http", 403, {"message": "SSL is required"}),
    ],
)
def test_caller_bugs_that_look_like_auth_errors_do_not_mark_the_token_dead(network: str, status: int, body: object) -> None:
    assert classify(network, status, {}, body).kind is K.BAD_REQUEST


@pytest.mark.parametrize("network", registry.names)
def test_oauth_errors_are_auth_or_permission_on_every_network(network: str) -> None:
    for name, kind in [("invalid_grant", K.AUTH_INVALID), ("invalid_client", K.AUTH_INVALID), ("invalid_scope", K.PERMISSION)]:
        assert classify(network, 400, {}, {"error": name, "error_description": "x"}).kind is kind
    challenge = {"www-authenticate": 'Bearer realm="api", error="insufficient_scope"'}
    assert classify(network, 403, challenge, "").kind is K.PERMISSION
