"""The social-API simulator of examples/social_sync: deterministic data, seeded failures, and
answers that celery_dlx's classifiers read as the failures they imitate.

The simulator is standard library only: most tests call :meth:`SocialAPI.answer` with a fake
clock; the HTTP tests serve it on an ephemeral port of 127.0.0.1 in this process.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest

from celery_dlx.classify import VerdictKind, classify
from celery_dlx.pagination.plans import Mode, Page
from examples.social_sync import roster
from examples.social_sync.clients import Call, FacebookAPI, FollowersAPI, LinkedInAPI, TwitterAPI
from examples.social_sync.roster import FULL, SHORT, Account
from examples.social_sync.simulator import (
    AUTH_INVALID,
    CALLS,
    IP_LIMITED,
    ITEMS,
    OK,
    OUTAGE,
    REFRESH_PATH,
    REFRESHED,
    SERVER_ERROR,
    SLOW,
    TOKEN_EXPIRED,
    TOKEN_LIMITED,
    Faults,
    Outage,
    Quota,
    Quotas,
    Request,
    SocialAPI,
)
from examples.social_sync.wire import Reply

NOW = 1_700_000_000.0  # a multiple of every quota window below: windows start here
CALM = Faults(error_rate=0.0, slow_rate=0.0)
GENEROUS = {network: Quotas(token=Quota(10_000, 60), ip=Quota(10_000, 60)) for network in roster.NETWORKS}


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def account(network: str, followers: int = 2500, *, dead: bool = False, endless_tail: bool = False) -> Account:
    return Account(
        f"{network}-x", network, followers, f"tok-{network}", 1_000_000, dead=dead, endless_tail=endless_tail
    )


def simulator(
    *accounts: Account, faults: Faults = CALM, quotas: dict[str, Quotas] = GENEROUS, clock: Clock | None = None
) -> SocialAPI:
    return SocialAPI(accounts, faults, quotas, clock or Clock())


def profile(a: Account) -> Request:
    paths = {
        "facebook": "/facebook/v19.0/{}",
        "twitter": "/twitter/2/users/{}",
        "linkedin": "/linkedin/v2/networkSizes/{}",
    }
    return Request(paths[a.network].format(a.id), token=a.token)


def verdict(network: str, reply: Reply, now: float = NOW) -> Any:
    return classify(network, reply.status, reply.headers, reply.body, now=now)


# -- the roster -------------------------------------------------------------------------------


def test_the_roster_is_a_function_of_the_seed() -> None:
    assert roster.build(7, FULL) == roster.build(7, FULL)
    assert roster.build(7, FULL) != roster.build(8, FULL)


@pytest.mark.parametrize("shape", [FULL, SHORT], ids=["full", "short"])
def test_the_roster_has_the_shape_it_promises(shape: roster.Shape) -> None:
    accounts = roster.build(3, shape)
    assert Counter(a.network for a in accounts) == Counter(shape.accounts)
    assert Counter(a.network for a in accounts if a.dead) == Counter(shape.dead)
    whales = [a for a in accounts if a.followers >= shape.whale_threshold]
    assert sorted(a.network for a in whales) == sorted(shape.whales)
    assert not any(a.dead for a in whales)
    assert len({a.token for a in accounts}) == len(accounts)


def test_follower_ids_are_fixed_per_account_and_never_shared() -> None:
    accounts = roster.build(7, FULL)
    ids = [set(a.follower_ids()) for a in accounts]
    assert [len(s) for s in ids] == [a.followers for a in accounts]
    assert len(set().union(*ids)) == sum(a.followers for a in accounts)
    whale = max(accounts, key=lambda a: a.followers)
    assert list(whale.follower_ids(10, 13)) == [whale.first_follower + i for i in (10, 11, 12)]
    assert list(whale.follower_ids(whale.followers - 1, whale.followers + 5)) == [
        whale.first_follower + whale.followers - 1
    ]


# -- pages and data ---------------------------------------------------------------------------


def test_facebook_offset_pages_cover_the_followers_exactly() -> None:
    fb = account("facebook", 2500)
    api = simulator(fb)
    served: list[int] = []
    for offset in range(0, 3000, 1000):
        body = api.answer(
            Request(f"/facebook/v19.0/{fb.id}/followers", {"offset": str(offset), "limit": "1000"}, fb.token)
        ).reply.body
        served += [int(item["id"]) for item in body["data"]]
        assert ("next" in body["paging"]) == (offset + 1000 < 2500)
    assert served == list(fb.follower_ids())
    assert api.answer(profile(fb)).reply.body == {"id": fb.id, "followers_count": 2500}


def test_twitter_cursors_chain_through_every_follower_and_end_with_zero() -> None:
    tw = account("twitter", 12_345)
    api = simulator(tw)
    served, cursor = [], "-1"
    while cursor != "0":
        query = {"user_id": tw.id, "cursor": cursor, "count": "5000"}
        body = api.answer(Request("/twitter/1.1/followers/ids.json", query, tw.token)).reply.body
        served += body["ids"]
        cursor = body["next_cursor_str"]
    assert served == list(tw.follower_ids())


def test_linkedin_off_by_one_repeats_the_last_follower_past_the_end_for_ever() -> None:
    buggy, fine = (
        account("linkedin", 1500, endless_tail=True),
        Account("linkedin-ok", "linkedin", 1500, "tok-ok", 5_000_000),
    )
    api = simulator(buggy, fine)

    def page(a: Account, start: int) -> list[str]:
        body = api.answer(
            Request(f"/linkedin/v2/followers/{a.id}", {"start": str(start), "count": "1000"}, a.token)
        ).reply.body
        return [element["follower"] for element in body["elements"]]

    last = f"urn:li:person:{buggy.first_follower + 1499}"
    assert len(page(buggy, 1000)) == 500
    assert [page(buggy, start) for start in (2000, 3000, 50_000)] == [[last]] * 3
    assert page(fine, 2000) == []
    assert api.answer(profile(buggy)).reply.body == {"firstDegreeSize": 1500}


# -- failures, as the classifiers read them ---------------------------------------------------


def test_facebook_dead_tokens_are_oauth_190_with_distinct_subcodes_and_messages() -> None:
    dead = [Account(f"facebook-d{i}", "facebook", 100, f"tok-d{i}", 1_000_000 * (i + 1), dead=True) for i in range(4)]
    api = simulator(*dead)
    verdicts = [verdict("facebook", api.answer(profile(a)).reply) for a in dead]
    assert {v.kind for v in verdicts} == {VerdictKind.AUTH_INVALID}
    assert {v.code for v in verdicts} == {190}
    assert [v.subcode for v in verdicts] == [460, 463, 458, None]
    assert len({v.reason for v in verdicts}) == 4
    assert api.stats()["facebook"][AUTH_INVALID] == 4


@pytest.mark.parametrize(("network", "code"), [("twitter", 89), ("linkedin", 65601)])
def test_dead_tokens_of_twitter_and_linkedin_are_auth_invalid(network: str, code: int) -> None:
    a = account(network, dead=True)
    assert (v := verdict(network, simulator(a).answer(profile(a)).reply)).kind is VerdictKind.AUTH_INVALID
    assert v.code == code


@pytest.mark.parametrize("network", roster.NETWORKS)
def test_an_expired_token_reads_as_refreshable_and_works_again_once_refreshed(network: str) -> None:
    a = account(network)
    api = simulator(a, faults=Faults(error_rate=0.0, slow_rate=0.0, expired_rate=1.0))
    expired = verdict(network, api.answer(profile(a)).reply)
    assert (expired.kind, expired.refreshable) == (VerdictKind.AUTH_INVALID, True)
    refresh = api.answer(Request(REFRESH_PATH, {"account": a.id})).reply
    assert verdict(network, refresh).kind is VerdictKind.OK
    token = refresh.body["access_token"]
    assert token != a.token
    assert api.answer(Request(profile(a).path, token=token)).reply.status == 200
    assert verdict(network, api.answer(profile(a)).reply).kind is VerdictKind.AUTH_INVALID  # the old one stays dead
    assert (api.stats()[network][TOKEN_EXPIRED], api.stats()[network][REFRESHED]) == (2, 1)


def test_a_dead_tokens_refresh_is_refused_with_invalid_grant() -> None:
    a = account("linkedin", dead=True)
    refusal = verdict("linkedin", simulator(a).answer(Request(REFRESH_PATH, {"account": a.id})).reply)
    assert (refusal.kind, refusal.code, refusal.refreshable) == (VerdictKind.AUTH_INVALID, "invalid_grant", False)


def test_seeded_faults_expire_some_live_tokens_never_a_dead_one() -> None:
    accounts = roster.build(0, FULL)
    api = SocialAPI(accounts, Faults.seeded(0, roster.NETWORKS, within=10.0))
    dead = {a.id for a in accounts if a.dead}
    assert api.expired and not api.expired & dead
    assert len(api.expired) < len(accounts) - len(dead)
    assert SocialAPI(accounts, CALM).expired == frozenset()


def test_a_token_that_is_not_the_accounts_own_is_refused() -> None:
    a = account("twitter")
    reply = simulator(a).answer(Request(profile(a).path, token="someone-else")).reply
    assert verdict("twitter", reply).kind is VerdictKind.AUTH_INVALID


@pytest.mark.parametrize(
    ("network", "status", "wait"),
    [
        ("twitter", 429, 3.0),  # x-rate-limit-reset: the window's end, a UNIX second
        ("facebook", 400, 3.0),  # estimated_time_to_regain_access: minutes, rounded up to 0.01
        ("linkedin", 429, 3.0),  # Retry-After: seconds, rounded up
    ],
)
def test_the_token_quota_answers_with_the_reset_the_classifier_reads(network: str, status: int, wait: float) -> None:
    a = account(network)
    clock = Clock(NOW + 2.0)  # in a 5 s window starting at NOW: 3 s left
    quotas = {**GENEROUS, network: Quotas(token=Quota(2, 5.0), ip=Quota(100, 5.0))}
    api = simulator(a, quotas=quotas, clock=clock)
    assert [api.answer(profile(a)).reply.status for _ in range(2)] == [200, 200]
    reply = api.answer(profile(a)).reply
    assert reply.status == status
    v = verdict(network, reply, now=clock.now)
    assert v.kind is VerdictKind.RATE_LIMITED
    assert wait <= v.retry_after <= wait + 0.6  # never early, at most one rounding step late
    assert api.stats()[network][TOKEN_LIMITED] == 1
    clock.now = NOW + 5.0  # the next window
    assert api.answer(profile(a)).reply.status == 200


@pytest.mark.parametrize(("network", "retry_after"), [("twitter", 5.0), ("facebook", None), ("linkedin", 5.0)])
def test_the_address_quota_covers_every_token_and_is_rate_limited(network: str, retry_after: float | None) -> None:
    accounts = [Account(f"{network}-{i}", network, 100, f"tok-{i}", 1_000_000 * (i + 1)) for i in range(3)]
    quotas = {**GENEROUS, network: Quotas(token=Quota(100, 5.0), ip=Quota(2, 5.0))}
    api = simulator(*accounts, quotas=quotas)
    statuses = [api.answer(profile(a)).reply.status for a in accounts]
    assert statuses[:2] == [200, 200]
    v = verdict(network, api.answer(profile(accounts[2])).reply)
    assert v.kind is VerdictKind.RATE_LIMITED
    assert v.retry_after == retry_after  # Facebook's application limit names no time: backoff
    assert api.stats()[network][IP_LIMITED] == 2
    other = Request(profile(accounts[0]).path, token=accounts[0].token, client="10.0.0.2")
    assert api.answer(other).reply.status == 200


def test_outages_start_at_the_first_call_and_last_their_duration() -> None:
    tw, fb = account("twitter"), account("facebook")
    clock = Clock()
    faults = Faults(error_rate=0.0, slow_rate=0.0, outages=(Outage("twitter", 10.0, 4.0),))
    api = simulator(tw, fb, faults=faults, clock=clock)
    kinds = {}
    for elapsed in (0.0, 9.9, 10.0, 13.9, 14.0):
        clock.now = NOW + elapsed
        kinds[elapsed] = verdict("twitter", api.answer(profile(tw)).reply).kind
        assert api.answer(profile(fb)).reply.status == 200  # another network is not down
    assert kinds == {0.0: VerdictKind.OK, 9.9: VerdictKind.OK, 10.0: VerdictKind.OVER_CAPACITY,
                     13.9: VerdictKind.OVER_CAPACITY, 14.0: VerdictKind.OK}  # fmt: skip
    assert api.stats()["twitter"][OUTAGE] == 2


@pytest.mark.parametrize("network", ["facebook", "linkedin"])
def test_outages_of_facebook_and_linkedin_are_retried_soon(network: str) -> None:
    a = account(network)
    api = simulator(a, faults=Faults(error_rate=0.0, slow_rate=0.0, outages=(Outage(network, 0.0, 5.0),)))
    assert verdict(network, api.answer(profile(a)).reply).kind is VerdictKind.RETRY_SOON


def pages_of(a: Account, count: int) -> list[Request]:
    return [
        Request(f"/facebook/v19.0/{a.id}/followers", {"offset": str(i), "limit": "1"}, a.token) for i in range(count)
    ]


def test_server_errors_and_slow_answers_come_at_their_rates_and_read_as_retry_soon() -> None:
    fb = account("facebook", 4000)
    api = simulator(fb, faults=Faults(seed=1, error_rate=0.05, slow_rate=0.02, slow_seconds=0.25))
    answers = [api.answer(request) for request in pages_of(fb, 4000)]
    errors = [a.reply for a in answers if a.reply.status >= 500]
    slow = [a for a in answers if a.delay]
    assert 0.035 < len(errors) / 4000 < 0.065
    assert 0.01 < len(slow) / 4000 < 0.03
    assert {verdict("facebook", reply).kind for reply in errors} == {VerdictKind.RETRY_SOON}
    assert {reply.status for reply in errors} == {500, 502}  # JSON from the API, HTML from a proxy
    assert {a.delay for a in slow} == {0.25} and {a.reply.status for a in slow} == {200}
    stats = api.stats()["facebook"]
    assert (stats[CALLS], stats[SERVER_ERROR], stats[SLOW]) == (4000, len(errors), len(slow))
    assert stats[OK] == 4000 - len(errors)
    assert stats[ITEMS] == 4000 - len(errors)


def test_the_same_seed_fails_the_same_requests_whatever_their_order() -> None:
    fb = account("facebook", 2000)
    requests = pages_of(fb, 2000) * 2  # each page twice: its first and its second attempt

    def outcomes(order: list[Request], seed: int) -> dict[tuple[str, int], int]:
        api, seen = simulator(fb, faults=Faults(seed=seed, error_rate=0.1, slow_rate=0.05)), Counter[str]()
        result = {}
        for request in order:
            offset = request.query["offset"]
            answer = api.answer(request)
            result[(offset, seen[offset])] = -1 if answer.delay else answer.reply.status
            seen[offset] += 1
        return result

    forward = outcomes(requests, seed=5)
    assert outcomes(list(reversed(requests)), seed=5) == forward
    assert outcomes(requests, seed=6) != forward
    assert any(forward[(o, 0)] != forward[(o, 1)] for o, _ in forward)  # a retry can succeed
    assert {-1, 200, 500, 502} == set(forward.values())


def test_seeded_outages_are_repeatable_and_a_few_seconds_long() -> None:
    faults = Faults.seeded(7, roster.NETWORKS, within=40.0)
    assert faults == Faults.seeded(7, roster.NETWORKS, within=40.0)
    assert faults.outages != Faults.seeded(8, roster.NETWORKS, within=40.0).outages
    assert [o.network for o in faults.outages] == list(roster.NETWORKS)
    assert all(8.0 <= o.start <= 40.0 and 3.0 <= o.duration <= 5.0 for o in faults.outages)


def test_unknown_paths_and_accounts_are_not_found() -> None:
    a = account("facebook")
    api = simulator(a)
    assert api.answer(Request("/myspace/v1/users/1")).reply.status == 404
    assert api.answer(Request("/facebook/v19.0/facebook-unknown", token=a.token)).reply.status == 404
    assert (
        api.answer(Request(f"/twitter/2/users/{a.id}", token=a.token)).reply.status == 404
    )  # another network's account


# -- over HTTP --------------------------------------------------------------------------------


def get(url: str, token: str, timeout: float = 5.0) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_over_http_answers_carry_a_date_and_twitters_quota_headers() -> None:
    tw = account("twitter", 7000)
    quotas = {**GENEROUS, "twitter": Quotas(token=Quota(2, 3600.0), ip=Quota(100, 3600.0))}
    with SocialAPI([tw], CALM, quotas) as api:
        status, headers, body = get(
            f"{api.url}/twitter/1.1/followers/ids.json?user_id={tw.id}&cursor=-1&count=5000", tw.token
        )
        assert status == 200 and len(body["ids"]) == 5000 and body["next_cursor"] == 5000
        assert headers["x-rate-limit-remaining"] == "1" and "Date" in headers
        get(f"{api.url}/twitter/2/users/{tw.id}", tw.token)
        status, headers, body = get(f"{api.url}/twitter/2/users/{tw.id}", tw.token)
    v = classify("twitter", status, headers, body)
    assert v.kind is VerdictKind.RATE_LIMITED
    assert v.retry_after is not None and 0 < v.retry_after <= 3601


def test_over_http_a_slow_answer_outlasts_the_clients_read_timeout() -> None:
    fb = account("facebook")
    with SocialAPI([fb], Faults(error_rate=0.0, slow_rate=1.0, slow_seconds=1.0), GENEROUS) as api:
        started = time.monotonic()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            get(f"{api.url}/facebook/v19.0/{fb.id}", fb.token, timeout=0.2)
        assert time.monotonic() - started < 0.9
    assert api.stats()["facebook"][SLOW] == 1


# -- the demo app's clients speak the simulator's protocol ------------------------------------


@pytest.mark.parametrize("client", [FacebookAPI(), TwitterAPI(), LinkedInAPI()], ids=lambda c: c.network)
def test_the_apps_clients_read_every_follower_the_simulator_serves(client: FollowersAPI) -> None:
    a = account(client.network, 2 * client.page_size + 17)
    api = simulator(a)

    def get(call: Call) -> Any:
        return api.answer(Request(call.path, {k: str(v) for k, v in call.params.items()}, a.token)).reply.body

    assert client.follower_count(get(client.profile(a.id))) == round(
        a.followers, -2 if client.network == "linkedin" else 0
    )
    mode = Mode.CURSOR if client.network == "twitter" else Mode.OFFSET
    page, served = Page("run", 0, client.page_size, mode, offset=0), []
    for _ in range(4):
        ids, cursor = client.items(get(client.page(a.id, page)))
        served += ids
        page = page.following(cursor=cursor)
        if mode is Mode.CURSOR and cursor is None:
            break
    assert served == [str(i) for i in a.follower_ids()]
