"""``bench/bench_dashboard.py`` matches the app: a short run of both its modes, against the real
production server on a small store, gets an answer to every callback and no error. The bench
reads each callback from the app's own dependency list, so a changed callback fails here first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _bench(tmp_path: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_dashboard.py"), "--days", "2",
                           "--per-hour", "20", "--cache", str(tmp_path / "cache"), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_every_callback_of_the_bench_answers(tmp_path):
    out = _bench(tmp_path, "--requests", "1")
    rows = [line.split()[0] for line in out.splitlines() if line.split()[:1] in
            (["overview"], ["topic"], ["watchlist"], ["headlines"], ["alerts"], ["retention"])]
    assert {"overview", "topic", "watchlist", "headlines", "alerts", "retention"} <= set(rows), out
    assert "worst p95" in out


def test_concurrent_clients_get_no_errors(tmp_path):
    out = _bench(tmp_path, "--clients", "3", "--minutes", "0.3")
    assert "errors 0" in out and " 0 callbacks" not in out, out
