"""The rule tables are the documentation: docs/classify.md is generated from them, and every
documented entry is proven by at least one recorded response in tests/fixtures/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from celery_dlx.classify import classify, registry
from celery_dlx.classify.doc_table import SHARED, own_tables, render

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
NOW = 1_700_000_000.0


def test_docs_table_is_generated_from_the_rules() -> None:
    assert (ROOT / "docs" / "classify.md").read_text(encoding="utf-8") == render(), (
        "docs/classify.md is out of date: python -m celery_dlx.classify.doc_table > docs/classify.md"
    )


def _rules_reached(network: str) -> set[str]:
    seen = set()
    for path in sorted((FIXTURES / network).glob("*.json")):
        fixture = json.loads(path.read_text(encoding="utf-8"))
        seen.add(classify(network, fixture["status"], fixture["headers"], fixture.get("body"), now=NOW).rule)
    return seen


@pytest.mark.parametrize("network", registry.names)
def test_every_documented_entry_has_a_fixture(network: str) -> None:
    seen = _rules_reached(network)
    missing = [
        table.rule_id(entry)
        for table in [*own_tables(network), *SHARED]
        for entry in table.rows
        if table.rule_id(entry) not in seen
    ]
    assert not missing, f"{network}: no fixture reaches {missing}"


def test_every_entry_names_a_source_and_the_corpus_is_large() -> None:
    for network in registry.names:
        for table in [*own_tables(network), *SHARED]:
            assert all(entry.source.strip() for entry in table.rows), table.name
    files = list(FIXTURES.glob("*/*.json"))
    assert len(files) >= 350
    assert all(json.loads(path.read_text(encoding="utf-8"))["source"].strip() for path in files)


def test_generated_fixtures_are_up_to_date() -> None:
    script = ROOT / "scripts" / "gen_classify_fixtures.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
