"""A replay whose broker goes away says how far it got, in one line, and exits 2: a rerun can be
judged (items sent twice count once downstream)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moodwire.broker import embedded_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "streams" / "samples" / "svb_2023_demo.csv"


def test_a_replay_that_loses_its_broker_says_how_far_it_got(tmp_path):
    with embedded_broker(partitions=2) as broker:
        env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": broker.bootstrap, "MOODWIRE_HOME": str(tmp_path)}
        replay = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "replay", str(SAMPLE), "--rate", "40",
                                   "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        time.sleep(8)  # a couple of hundred items sent
        broker.stop()
        out, err = replay.communicate(timeout=180)
    assert replay.returncode == 2, (out + err)[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "replay stopped after " in lines[0] and " of 1746 items from " in lines[0], lines[0]
    sent = int(lines[0].split("replay stopped after ")[1].split()[0])
    assert 0 < sent < 1746 and "the last published at 2023-03-" in lines[0]
