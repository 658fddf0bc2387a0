"""The social-sync demo, end to end: ``python -m examples.social_sync --short`` as a user runs it.

It starts its own simulator and three real workers, syncs nine accounts (one whale, one dead
token, LinkedIn's endless pages) through rate limits, outages, 5xx and timeouts, and must end
with every follower stored exactly once, the dead token parked, every expired token refreshed
(``on_token_expired``), a chart, and nothing left
behind on the broker or in Redis.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from kombu import Connection

from ..support import ROOT
from .dlx_app import BROKER_URL

pytestmark = pytest.mark.integration


def test_short_demo_syncs_every_follower_exactly_once_and_cleans_up(
    services: None, store: redis.Redis, tmp_path: Path
) -> None:
    chart = tmp_path / "chart.png"
    run = subprocess.run(
        [sys.executable, "-m", "examples.social_sync", "--short", "--chart", str(chart)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env={**os.environ, "SOCIAL_SYNC_BROKER": BROKER_URL},
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    synced = re.search(
        r"^synced == expected: ([\d,]+) == ([\d,]+) \(0 missing, 0 processed twice, 0 unexpected\)$", output, re.M
    )
    assert synced and synced.group(1) == synced.group(2), output
    assert re.search(r"^dead tokens parked: 1 of 1 \(facebook-\d+ auth_invalid\)", output, re.M), output
    refreshed = re.search(r"^expired tokens refreshed by on_token_expired: (\d+) of (\d+) ", output, re.M)
    assert refreshed and refreshed.group(1) == refreshed.group(2) != "0", output
    assert re.search(r"^pagination guards stopped [1-9]\d* endless chains", output, re.M), output
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    prefix = re.search(r"^prefix (social\.[0-9a-f]+);", output, re.M).group(1)  # type: ignore[union-attr]
    assert list(store.scan_iter(match=f"{prefix}:*")) == []
    assert list(store.scan_iter(match="{" + f"{prefix}:*")) == []  # the limiter's keys, tagged by its prefix
    with Connection(BROKER_URL) as conn:
        for queue in (f"{prefix}.parking", f"{prefix}.delay.10ms.L00", f"{prefix}.whales", f"{prefix}.facebook"):
            with pytest.raises(conn.channel_errors):
                conn.channel().queue_declare(queue=queue, passive=True)
