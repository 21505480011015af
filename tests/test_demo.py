"""``moodwire demo`` as a user runs it: a subprocess that must reach "alert fired" and "dashboard
answering", stop cleanly on SIGINT (children gone, ports freed), refuse a taken port, start a
stage that dies again, and stop everything when the broker dies."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moodwire.broker import free_port
from moodwire.broker import port_is_free as port_free

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_demo(tmp_path: Path, broker_port: int, dashboard_port: int) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "demo.out"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOODWIRE_")},
           "MOODWIRE_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "demo", "--broker-port", str(broker_port),
                             "--dashboard-port", str(dashboard_port)], env=env, stdout=out.open("wb"),
                            stderr=subprocess.STDOUT)
    return proc, out


def wait_for_text(out: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in out.read_text(errors="replace"):
        assert proc.poll() is None, out.read_text()
        assert time.monotonic() < deadline, f"{text!r} did not appear:\n" + out.read_text()
        time.sleep(0.5)
    return out.read_text()


def child_pids(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"started (\w+)\s+pid (\d+)", text)}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie of an exited child counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_the_demo_fires_an_alert_serves_the_dashboard_and_stops_cleanly_on_ctrl_c(tmp_path):
    broker_port, dashboard_port = free_port(), free_port()
    proc, out = start_demo(tmp_path, broker_port, dashboard_port)
    try:
        text = wait_for_text(out, "dashboard answering", proc, 240)
        assert re.search(r"password \S+\)", text) and "user demo" in text
        started = time.monotonic()
        text = wait_for_text(out, "alert fired: watchlist-negative on watchlist: US regional banks", proc, 420)
        print(f"first bank alert {time.monotonic() - started:.0f} s after the dashboard answered")
        # the shipped rules: the early warning comes first, each line with its window and a headline
        fired = [line for line in text.splitlines() if line.startswith("alert fired: ")]
        assert fired[0].startswith("alert fired: watchlist-early on watchlist: US regional banks"), fired
        assert re.search(r"24h window \d{4}-\d\d-\d\d \d\d:\d\d UTC to \d{4}-\d\d-\d\d \d\d:\d\d UTC\); "
                         r"first headline \d{4}-\d\d-\d\d \d\d:\d\d UTC: [\'\"]", fired[0]), fired[0]
        pids = child_pids(text)
        assert set(pids) == {"broker", "classify", "aggregate", "notify", "dashboard", "replay"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    stopped = dict(re.findall(r"(\w+) \((-?\d+)\)", text.split("demo stopped: ")[1].splitlines()[0]))
    stopped.pop("replay", None)  # still replaying when Ctrl-C came, or finished before
    assert stopped == {name: "0" for name in ("dashboard", "notify", "aggregate", "classify", "broker")}, text
    assert all(gone(pid) for pid in pids.values()), text
    assert port_free("127.0.0.1", broker_port) and port_free("127.0.0.1", dashboard_port)
    notifications = tmp_path / "home" / "demo" / "notifications.jsonl"
    assert '"status": "firing"' in notifications.read_text()


def test_a_taken_port_is_named_and_nothing_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, out = start_demo(tmp_path, free_port(), port)
        assert proc.wait(60) == 2
    assert f"port {port} for the dashboard is taken" in out.read_text() and "--dashboard-port" in out.read_text()
    assert "started" not in out.read_text()


def test_a_stage_that_dies_is_started_again_and_a_dead_broker_stops_the_demo(tmp_path):
    broker_port, dashboard_port = free_port(), free_port()
    proc, out = start_demo(tmp_path, broker_port, dashboard_port)
    try:
        text = wait_for_text(out, "started replay", proc, 120)
        pids = child_pids(text)
        os.kill(pids["notify"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while out.read_text().count("started notify") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.5)
        text = out.read_text()
        assert "notify exited with status -9" in text and "starting it again in 1 s" in text
        again = [int(m) for m in re.findall(r"started notify\s+pid (\d+)", text)]
        assert len(again) == 2 and again[1] != pids["notify"] and not gone(again[1])
        os.kill(pids["broker"], signal.SIGKILL)
        assert proc.wait(90) == 1, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert "the broker exited with status -9" in text and "cannot go on: stopping" in text
    assert all(gone(pid) for pid in [*pids.values(), again[1]]), text
    assert port_free("127.0.0.1", broker_port) and port_free("127.0.0.1", dashboard_port)


def test_a_demo_killed_outright_takes_its_stages_with_it(tmp_path):
    # SIGKILL leaves the supervisor no time to stop its children: each has the kernel send it
    # SIGTERM when the supervisor dies (a failed test's proc.kill() left five stages running).
    broker_port, dashboard_port = free_port(), free_port()
    proc, out = start_demo(tmp_path, broker_port, dashboard_port)
    try:
        pids = child_pids(wait_for_text(out, "started replay", proc, 120))
        assert set(pids) == {"broker", "classify", "aggregate", "notify", "dashboard", "replay"}
    finally:
        proc.kill()
    proc.wait(30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(gone(pid) for pid in pids.values()):
        time.sleep(0.5)
    assert all(gone(pid) for pid in pids.values()), {n: p for n, p in pids.items() if not gone(p)}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (port_free("127.0.0.1", broker_port)
                                               and port_free("127.0.0.1", dashboard_port)):
        time.sleep(0.5)
    assert port_free("127.0.0.1", broker_port) and port_free("127.0.0.1", dashboard_port)


def test_the_printed_dashboard_range_holds_the_whole_replayed_recording():
    from datetime import datetime, timedelta, timezone

    from dashboards.state import time_range
    from moodwire_cli.demo import SAMPLE, replay_range
    from streams.ingest.replay import read_recorded

    now = datetime(2026, 12, 3, 22, 40, tzinfo=timezone.utc)
    rng = time_range(replay_range(SAMPLE, now))
    times = [i.published_at for i in read_recorded(SAMPLE, now).items]
    assert rng.start <= min(times) and max(times) <= rng.end
    assert rng.end - rng.start > timedelta(days=7)  # "last 7d" missed the first week: SVB's fall


def test_an_alert_line_names_the_key_the_window_and_the_first_headline_in_one_format():
    import json
    from datetime import datetime, timezone

    from moodwire.records import AlertEvent, Evidence
    from moodwire_cli.demo import alert_line

    at = datetime(2026, 12, 5, 20, 3, tzinfo=timezone.utc)
    event = AlertEvent(fingerprint="f", rule="watchlist-early", topic="watchlist:US regional banks", kind="watchlist",
                       status="firing", value=3, threshold=3, window="24h", starts_at=at, seq=1,
                       window_start=datetime(2026, 12, 5, tzinfo=timezone.utc),
                       window_end=datetime(2026, 12, 6, tzinfo=timezone.utc),
                       evidence=[Evidence(id="b", title="Silvergate to shut down", score=-0.8,
                                          published_at=datetime(2026, 12, 5, 8, 25, tzinfo=timezone.utc)),
                                 Evidence(id="a", title="SVB's shares fall 60%", score=-0.9, published_at=at)])
    line = alert_line(json.loads(event.encode()))
    assert line == ("alert fired: watchlist-early on watchlist: US regional banks (value +3.00, threshold +3.00, "
                    "24h window 2026-12-05 00:00 UTC to 2026-12-06 00:00 UTC); first headline 2026-12-05 08:25 UTC: "
                    "'Silvergate to shut down' (-0.80)")
    older = {k: v for k, v in json.loads(event.encode()).items() if not k.startswith("window_")}  # written before
    assert alert_line({**older, "status": "resolved", "topic": "Macro", "kind": "topic", "reason": "no data: x",
                       "evidence": []}) == "alert resolved: watchlist-early on Macro (value +3.00, threshold +3.00, 24h window) — no data: x"
