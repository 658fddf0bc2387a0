"""Write a fixture for every documented rule-table entry that no fixture covers yet.

    python scripts/gen_classify_fixtures.py            # writes tests/fixtures/<network>/gen_*.json
    python scripts/gen_classify_fixtures.py --check    # exit 1 if a file would change

Each generated fixture is the response the entry's source documents, in that network's body
shape (Graph API ``error`` object, v1.1 ``errors`` list, v2 problem, LinkedIn
``serviceErrorCode``, reddit ``json.errors``, RFC 6749 / 6750 bodies and challenges…), with
the entry's documented status and text and its ``source``.  The expected verdict is written
from the entry (its kind) and from the headers written here (the wait they name), never by
running the classifier, so the fixture test checks the classifier against the documentation.
Hand-written fixtures stay as they are; a generated one is only added where none covers the
entry.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celery_dlx.classify import VerdictKind, classify, registry
from celery_dlx.classify.tables import Entry, Table, tables_of

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
DATE = "Tue, 14 Nov 2023 22:13:20 GMT"  # 1_700_000_000
NOW = 1_700_000_000
#: LinkedIn's daily limits reset at midnight UTC: 6400 s after DATE.
LINKEDIN_MIDNIGHT = 6400.0
FB_TRACE = "AWzZ3qTjXfY0aBcD"


def required_tables(network: str) -> list[Table]:
    """The tables a network must prove with fixtures: its own, and the shared OAuth ones."""
    own = (network, "oauth", "caller")
    return [table for table in tables_of(registry.classifier(network)) if table.name.split()[0] in own]


def covered(network: str) -> set[str]:
    """Rule ids the network's hand-written fixtures already reach."""
    seen = set()
    for path in sorted((FIXTURES / network).glob("*.json")):
        if path.name.startswith("gen_"):
            continue
        fixture = json.loads(path.read_text(encoding="utf-8"))
        body = fixture.get("body")
        seen.add(classify(network, fixture["status"], fixture["headers"], body, now=NOW).rule)
    return seen


def _status(entry: Entry, default: int) -> int:
    if isinstance(entry.key, int) and 100 <= entry.key <= 599 and entry.status is None:
        return entry.key
    return entry.status or default


def _rate_headers(network: str) -> tuple[dict[str, str], float | None]:
    """Headers a throttled answer of ``network`` carries, and the wait they name."""
    if network in ("facebook", "instagram"):
        usage = {"17841400000000000": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 5}]}
        return {"X-Business-Use-Case-Usage": json.dumps(usage, separators=(",", ":"))}, 300.0
    if network == "twitter":
        return {"x-rate-limit-limit": "900", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(NOW + 900)}, 900.0
    if network == "linkedin":
        return {}, LINKEDIN_MIDNIGHT
    if network == "mastodon":
        return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2023-11-14T22:18:20.000Z"}, 300.0
    if network == "github":
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW + 600)}, 600.0
    return {"Retry-After": "120"}, 120.0


def _message(entry: Entry) -> str:
    """A realistic message for a message-table entry: its documented text holds the fragment."""
    text = entry.text
    if str(entry.key) not in text.lower():
        text = f"{str(entry.key)[0].upper()}{str(entry.key)[1:]}: {text}"
    return text


def _shape(network: str, table: Table, entry: Entry) -> tuple[int, dict[str, str], Any]:
    """``(status, extra headers, body)`` of the documented response of ``entry``."""
    name, key, text = table.name, entry.key, entry.text
    if name == "oauth www-authenticate":
        challenge = f'Bearer realm="api", error="{key}", error_description="{text}"'
        return _status(entry, 401), {"WWW-Authenticate": challenge}, ""
    if name in ("oauth error", "github oauth error"):
        return _status(entry, 400), {}, {"error": key, "error_description": text}
    if name == "caller bug":
        return _status(entry, 401), {}, _plain_error(network, _message(entry), _status(entry, 401))
    if name.startswith(("facebook", "instagram code")):
        return _graph(network, table, entry)
    if name == "instagram legacy error_type":
        status = _status(entry, 400)
        return status, {}, {"meta": {"error_type": key, "code": status, "error_message": text}}
    if name == "twitter v1.1 code":
        return _status(entry, 400), {}, {"errors": [{"code": key, "message": text}]}
    if name == "twitter v2 problem":
        problem = {"title": str(key).replace("-", " ").title(), "detail": text, "type": f"https://api.twitter.com/2/problems/{key}"}
        status = _status(entry, 400)
        if status == 200:
            return 200, {}, {"errors": [{**problem, "resource_type": "tweet", "parameter": "id", "value": "1460323737035677698", "resource_id": "1460323737035677698"}]}
        return status, {}, {**problem, "status": status}
    if name == "linkedin code":
        status = _status(entry, 400)
        code, label = key if isinstance(key, tuple) else (key, None)
        body: dict[str, Any] = {"status": status, "message": text}
        if code is not None:
            body["serviceErrorCode"] = code
        if label is not None:
            body["code"] = label
        return status, {}, body
    if name == "reddit error":
        if isinstance(key, tuple):
            status = _status(entry, 403)
            return status, {}, {"reason": key[1], "message": "Forbidden" if status == 403 else "Not Found", "error": status}
        field = "ratelimit" if "RATELIMIT" in str(key) else "text"
        return 200, {}, {"json": {"errors": [[key, text, field]]}}
    if table.shape == "message text":
        status = _status(entry, 400)
        return status, {}, _plain_error(network, _message(entry), status)
    if table.shape == "HTTP status":
        status = int(key)  # type: ignore[call-overload]
        return status, {}, _plain_error(network, text, status)
    raise ValueError(f"no body shape for table {name!r}")


def _graph(network: str, table: Table, entry: Entry) -> tuple[int, dict[str, str], Any]:
    key, text = entry.key, entry.text
    if table.name == "facebook OAuthException text":
        return _status(entry, 400), {}, {"error": {"message": _message(entry), "type": "OAuthException", "fbtrace_id": FB_TRACE}}
    if table.name == "facebook flag":
        return 500, {}, {"error": {"message": text, "type": "FacebookApiException", "code": 1357045, "is_transient": True, "fbtrace_id": FB_TRACE}}
    if table.name == "facebook code range":
        code, subcode = 299, None
    elif isinstance(key, tuple):
        code, subcode = key
        code = 190 if code is None else code
    else:
        code, subcode = key, None
    error: dict[str, Any] = {"message": f"({'#'}{code}) {text}" if code < 1000 else text, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if network == "instagram":
        error.update(is_transient=entry.kind.retryable, error_user_msg=text)
    error["fbtrace_id"] = FB_TRACE
    return _status(entry, 400), {}, {"error": error}


def _plain_error(network: str, text: str, status: int) -> Any:
    """The body a network sends for an error that has only a message."""
    if network in ("facebook", "instagram"):
        return {"error": {"message": text, "type": "OAuthException", "fbtrace_id": FB_TRACE}}
    if network == "twitter":
        return {"title": "Unauthorized" if status == 401 else "Error", "detail": text, "type": "about:blank", "status": status}
    if network == "linkedin":
        return {"message": text, "status": status}
    if network == "reddit":
        return {"message": text, "error": status}
    if network == "mastodon":
        return {"error": text}
    if network == "github":
        return {"message": text, "documentation_url": "https://docs.github.com/rest", "status": str(status)}
    return {"type": "about:blank", "title": "Error", "status": status, "detail": text}


def _expect(network: str, entry: Entry, headers_wait: float | None) -> dict[str, Any]:
    kind = entry.kind
    wait = None
    if kind.retryable:
        wait = headers_wait if headers_wait is not None else entry.after
    expect: dict[str, Any] = {"kind": kind.value, "retry_after": wait}
    if kind is VerdictKind.AUTH_INVALID and entry.refreshable is not None:
        expect["refreshable"] = entry.refreshable
    return expect


def fixtures() -> dict[Path, dict[str, Any]]:
    """Every fixture to generate, by path."""
    out: dict[Path, dict[str, Any]] = {}
    for network in registry.names:
        done = covered(network)
        for table in required_tables(network):
            for entry in table.rows:
                rule_id = table.rule_id(entry)
                if rule_id in done:
                    continue
                status, extra, body = _shape(network, table, entry)
                headers = {"Content-Type": "application/json; charset=UTF-8", "Date": DATE}
                if body == "":
                    headers["Content-Type"] = "text/plain"
                wait = None
                if entry.kind is VerdictKind.RATE_LIMITED and not table.name.startswith("oauth"):
                    rate, wait = _rate_headers(network)
                    extra = {**rate, **extra}
                headers.update(extra)
                slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{table.name} {entry.key}").strip("_").lower()
                out[FIXTURES / network / f"gen_{slug}.json"] = {
                    "description": f"{entry.text} ({table.name}: {entry.key!r}); generated by scripts/gen_classify_fixtures.py.",
                    "source": entry.source,
                    "status": status,
                    "headers": headers,
                    "body": body,
                    "expect": {**_expect(network, entry, wait), "rule": rule_id},
                }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file would change")
    args = parser.parse_args()
    wanted = {path: json.dumps(data, indent=2, ensure_ascii=False) + "\n" for path, data in fixtures().items()}
    stale = [path for path in FIXTURES.glob("*/gen_*.json") if path not in wanted]
    changed = [path for path, text in wanted.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in [*stale, *changed]:
            print(f"out of date: {path.relative_to(FIXTURES)}")
        return 1 if stale or changed else 0
    for path in stale:
        path.unlink()
    for path in changed:
        path.write_text(wanted[path], encoding="utf-8")
    print(f"{len(wanted)} generated fixtures ({len(changed)} written, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
