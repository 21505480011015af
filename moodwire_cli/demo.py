"""``moodwire demo``: the whole pipeline on one machine, as supervised child processes.

Children (each a ``moodwire`` command, logs in ``<home>/logs/``): the embedded broker, classify,
aggregate (with the shipped rules, ``config/rules.feeds.yaml``), notify (``config/notify.demo.yaml``, a log
receiver), the dashboard, and the replay of real recorded headlines (the two weeks of Silicon
Valley Bank's failure and the Credit Suisse rescue, ``streams/samples/svb_2023_demo.csv``),
time-compressed and shifted to now; classify matches ``config/watchlists.example.yaml``. The supervisor prints each alert as the notifier delivers it, says when the dashboard
answers, stops everything on Ctrl-C / SIGTERM (children get SIGTERM, then SIGKILL after a
grace period). A stage that exits (classify, aggregate, notify, the dashboard) is started again
after a back-off of 1, 2, 4 … 30 s, saying why with its last log line; one that exits more
than ``MAX_RESTARTS`` times within ``RESTART_WINDOW_S`` is a crash loop and stops the demo, as does the
broker exiting (it keeps everything in memory, so nothing could go on). A replay that fails says
how far it got and the stages keep running.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from moodwire.broker import dies_with, port_is_free
from moodwire.errors import MoodwireError
from moodwire.records import key_label
from moodwire.spans import format_time

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "streams" / "samples" / "svb_2023_demo.csv"  # real headlines, see streams/samples/NOTICE.md
WATCHLISTS = ROOT / "config" / "watchlists.example.yaml"
RULES = ROOT / "config" / "rules.feeds.yaml"  # the rules shipped for a news feed: the demo shows the product


def alert_line(a: dict) -> str:
    """One notified alert (an ``AlertEvent`` as JSON) as the terminal prints it: the key as the
    dashboard writes it, times in one format (UTC), the window that made the transition, and the
    first headline of its evidence."""
    verb = "alert fired" if a["status"] == "firing" else "alert resolved"
    key = key_label(a["topic"])
    line = f"{verb}: {a['rule']} on {key} (value {a['value']:+.2f}, threshold {a['threshold']:+.2f}"
    if a.get("window_start") and a.get("window_end"):
        line += f", {a['window']} window {_utc(a['window_start'])} to {_utc(a['window_end'])})"
    else:
        line += f", {a['window']} window)"
    if a.get("reason"):
        line += f" — {a['reason']}"
    evidence = sorted(a.get("evidence") or [], key=lambda e: e["published_at"])
    if evidence:
        first = evidence[0]
        line += f"; first headline {_utc(first['published_at'])}: {first['title']!r} ({first['score']:+.2f})"
    return line


def _utc(text: str) -> str:
    return format_time(datetime.fromisoformat(text.replace("Z", "+00:00")))


def replay_range(sample: Path, now: datetime | None = None) -> str:
    """The dashboard query whose range holds the whole replay: the recording is shifted by whole
    days so its newest item lands within the last day, so it reaches back as far as the
    recording spans (two weeks: further than "last 7d")."""
    from urllib.parse import urlencode

    from streams.ingest.replay import read_recorded

    now = now or datetime.now(timezone.utc)
    times = [item.published_at for item in read_recorded(sample, now).items]
    start = (min(times) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    end = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return "?" + urlencode({"range": "custom", "start": f"{start:%Y-%m-%dT%H:%M}", "end": f"{end:%Y-%m-%dT%H:%M}"})


def replay_banner(sample: Path, speedup: float, now: datetime | None = None) -> str:
    """What every dashboard page of the demo says about its news: when it was published and by
    how much it is shifted (``read_recorded`` moves it by whole days)."""
    from streams.ingest.replay import read_recorded

    plan = read_recorded(sample, now or datetime.now(timezone.utc))
    first, last = plan.items[0].published_at - plan.shift, plan.items[-1].published_at - plan.shift
    return (f"Demo: real headlines published {first:%Y-%m-%d} to {last:%Y-%m-%d}, replayed {speedup:,.0f}x "
            f"faster with their times moved {plan.shift.days:,} days later; every time shown is UTC.")


class DemoError(MoodwireError):
    """The demo cannot start or a part of it died; the message says which and why."""


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    one_shot: bool = False  # the replay ends by itself
    process: subprocess.Popen | None = None
    log: Path | None = None
    exits: list[float] = field(default_factory=list)  # when it exited (monotonic), for the back-off
    restart_at: float | None = None  # when to start it again

    def tail(self, lines: int = 15) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


MAX_RESTARTS = 5
RESTART_WINDOW_S = 600.0


class Demo:
    def __init__(self, home: Path, broker_port: int, dashboard_port: int, speedup: float, say=print,
                 metrics_base: int = 0) -> None:
        self.home, self.broker_port, self.dashboard_port, self.speedup = home, broker_port, dashboard_port, speedup
        self.say, self.metrics_base = say, metrics_base
        self.children: list[Child] = []
        self.stop = threading.Event()
        self.password = secrets.token_urlsafe(9)
        self.bootstrap = f"127.0.0.1:{broker_port}"

    # ------------------------------------------------------------------ set-up
    def prepare(self) -> None:
        for what, port, setting in (("the embedded broker", self.broker_port, "--broker-port"),
                                    ("the dashboard", self.dashboard_port, "--dashboard-port")):
            if not port_is_free("127.0.0.1", port):
                raise DemoError(f"port {port} for {what} is taken (another demo or broker?); stop that program "
                                f"or choose another with {setting}")
        if self.home.exists():  # a demo starts clean: its broker is memory-only, so old state would not match
            shutil.rmtree(self.home)
        (self.home / "logs").mkdir(parents=True)
        from dashboards.passwords import hash_password

        (self.home / "users.yaml").write_text(f"users:\n  demo: '{hash_password(self.password)}'\n")
        base = {"MOODWIRE_HOME": str(self.home), "MOODWIRE_KAFKA_BOOTSTRAP": self.bootstrap,
                "MOODWIRE_STORE_URL": f"sqlite:///{self.home / 'moodwire.db'}", "PYTHONUNBUFFERED": "1"}

        def metrics(k: int) -> dict:
            return {"MOODWIRE_METRICS_PORT": str(self.metrics_base + k)} if self.metrics_base else {}

        self.children = [
            Child("broker", ["broker", "--port", str(self.broker_port)], base),
            Child("classify", ["classify"], {**base, **metrics(1), "MOODWIRE_WATCHLISTS": str(WATCHLISTS)}),
            Child("aggregate", ["aggregate", "--sink"], {
                **base, **metrics(2), "MOODWIRE_ALERT_RULES": str(RULES),
                "MOODWIRE_AGGREGATE_LATENESS": "10m", "MOODWIRE_AGGREGATE_IDLE": "20s"}),
            Child("notify", ["notify", "--config-file", str(ROOT / "config" / "notify.demo.yaml")], {**base, **metrics(3)}),
            Child("dashboard", ["dashboard", "--port", str(self.dashboard_port)], {
                **base, "MOODWIRE_DASHBOARD_USERS": str(self.home / "users.yaml"), "MOODWIRE_DASHBOARD_REFRESH_S": "10",
                "MOODWIRE_DASHBOARD_BANNER": replay_banner(SAMPLE, self.speedup),
                "MOODWIRE_ALERT_RULES": str(RULES)}),
            Child("replay", ["replay", str(SAMPLE), "--speedup", str(self.speedup), "--shift-to-now", "--no-progress"],
                  base, one_shot=True),
        ]

    def _start(self, child: Child) -> None:
        child.log = self.home / "logs" / f"{child.name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOODWIRE_")}
        env.update(child.env)
        child.process = subprocess.Popen([sys.executable, "-m", "moodwire_cli", *child.args], env=env, cwd=ROOT,
                                         stdout=child.log.open("ab"), stderr=subprocess.STDOUT,
                                         start_new_session=True,  # Ctrl-C reaches the demo; it stops the children
                                         # and a demo killed outright (SIGKILL) takes them with it: SIGTERM, a clean stop
                                         preexec_fn=dies_with(os.getpid(), signal.SIGTERM))
        self.say(f"started {child.name:<9} pid {child.process.pid:<7} log {child.log}")

    def _wait_for_broker(self, child: Child, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while "bootstrap:" not in (child.log.read_text(errors="replace") if child.log.exists() else ""):
            if child.process.poll() is not None:
                raise DemoError(f"the broker exited with status {child.process.returncode}:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise DemoError(f"the broker did not come up in {timeout_s:.0f} s:\n{child.tail()}")
            time.sleep(0.2)

    # ------------------------------------------------------------------ running
    def run(self) -> int:
        self.prepare()
        try:
            broker = self.children[0]
            self._start(broker)
            self._wait_for_broker(broker)
            for child in self.children[1:]:
                self._start(child)
            url = f"http://127.0.0.1:{self.dashboard_port}/{replay_range(SAMPLE)}"
            self.say(f"dashboard: {url}  (user demo, password {self.password}); alerts also go to "
                     f"{self.home / 'notifications.jsonl'}; Ctrl-C stops everything")
            return self._supervise(url)
        finally:
            self.shutdown()

    def _supervise(self, url: str) -> int:
        notifications = self.home / "notifications.jsonl"
        read_to, answering, replayed = 0, False, False
        while not self.stop.is_set():
            for child in self.children:
                code = child.process.poll() if child.process else None
                if code is None:
                    continue
                if child.one_shot:
                    if not replayed:
                        replayed = True
                        self.say(f"replay finished: {child.tail(1)}" if code == 0 else
                                 f"replay exited with status {code}: {child.tail(1)}")
                    continue
                if not self._restart(child, code):
                    return 1
            if not answering:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.dashboard_port}/healthz", timeout=1)
                    answering = True
                    self.say(f"dashboard answering at {url}")
                except OSError:
                    pass
            if notifications.exists():
                # Only what was appended since, up to the last complete line (the notifier may be
                # in the middle of writing one).
                with notifications.open("rb") as fh:
                    fh.seek(read_to)
                    chunk = fh.read()
                complete = chunk[:chunk.rfind(b"\n") + 1]
                read_to += len(complete)
                for line in complete.decode(errors="replace").splitlines():
                    for a in json.loads(line)["alerts"]:
                        self.say(alert_line(a))
            self.stop.wait(0.5)
        return 0

    def _restart(self, child: Child, code: int) -> bool:
        """Start an exited stage again after its back-off; False when the demo must stop."""
        now = time.monotonic()
        if child.restart_at is None:  # it has just exited
            if child.name == "broker":
                self.say(f"the broker exited with status {code}; it keeps every topic in memory, so the demo "
                         f"cannot go on: stopping. Last lines of {child.log}:\n{child.tail()}")
                return False
            child.exits = [t for t in child.exits if now - t < RESTART_WINDOW_S] + [now]
            if len(child.exits) > MAX_RESTARTS:
                self.say(f"{child.name} exited {len(child.exits)} times in {RESTART_WINDOW_S / 60:.0f} minutes "
                         f"(status {code}); stopping the demo. Last lines of {child.log}:\n{child.tail()}")
                return False
            wait = min(30.0, 2.0 ** (len(child.exits) - 1))
            child.restart_at = now + wait
            self.say(f"{child.name} exited with status {code} ({child.tail(1).strip()[:200]}); starting it again "
                     f"in {wait:.0f} s (exit {len(child.exits)} of at most {MAX_RESTARTS} in "
                     f"{RESTART_WINDOW_S / 60:.0f} minutes)")
        elif now >= child.restart_at:
            child.restart_at = None
            self._start(child)
        return True

    def shutdown(self, grace_s: float = 30) -> None:
        """SIGTERM to the stages first and the broker last (a stage stopping against a broker that
        is already gone waits on it); SIGKILL for any that outlive the grace period."""
        running = [c for c in reversed(self.children) if c.process and c.process.poll() is None]
        stages = [c for c in running if c.name != "broker"]
        brokers = [c for c in running if c.name == "broker"]
        for group in (stages, brokers):
            self._stop_group(group, grace_s)
        if running:
            self.say("demo stopped: " + ", ".join(f"{c.name} ({c.process.returncode})" for c in running))

    def _stop_group(self, group: list[Child], grace_s: float) -> None:
        for child in group:
            try:
                os.killpg(child.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        for child in group:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in {grace_s:.0f} s; killing it")
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.process.wait()


__all__ = ["Demo", "DemoError"]
