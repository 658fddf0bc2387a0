"""Every recorded response in tests/fixtures/<network>/ classifies as its file documents.

A fixture is a JSON file: ``source`` (the doc page or client-library file the response shape
comes from), ``status``, ``headers``, ``body`` (parsed JSON or text; ``body_base64`` for raw
bytes) and ``expect`` (``kind`` and ``retry_after``, optionally ``code``, ``subcode``, ``refreshable`` and
``rule``, the id of the table entry that must decide).  ``gen_*.json`` files are written by
``scripts/gen_classify_fixtures.py`` from the rule tables, one per entry no hand-written
fixture covers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from celery_dlx.classify import VerdictKind, classify, registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FILES = sorted(FIXTURES.glob("*/*.json"))
#: Fixtures without a Date header must not depend on the clock; a fixed "now" proves it.
NOW = 1_700_000_000.0


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _body(fixture: dict[str, Any]) -> Any:
    if "body_base64" in fixture:
        return base64.b64decode(fixture["body_base64"])
    return fixture["body"]


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_fixture_classifies_as_documented(path: Path) -> None:
    fixture = _load(path)
    expect = fixture["expect"]
    verdict = classify(path.parent.name, fixture["status"], fixture["headers"], _body(fixture), now=NOW)
    assert verdict.kind.value == expect["kind"], verdict
    if expect["retry_after"] is None:
        assert verdict.retry_after is None, verdict
    else:
        assert verdict.retry_after == pytest.approx(expect["retry_after"], abs=1e-6), verdict
    for field in ("code", "subcode", "refreshable", "rule"):
        if field in expect:
            assert getattr(verdict, field) == expect[field], verdict
    assert verdict.network == path.parent.name


def test_every_network_has_at_least_15_sourced_fixtures() -> None:
    for network in registry.names:
        files = list((FIXTURES / network).glob("*.json"))
        assert len(files) >= 15, f"{network}: {len(files)} fixtures"
        for path in files:
            fixture = _load(path)
            assert fixture["source"].strip(), f"{path} names no source"
            assert fixture["expect"]["kind"] in {kind.value for kind in VerdictKind}


def test_fixture_directories_are_known_networks() -> None:
    assert {path.parent.name for path in FILES} == set(registry.names)
