"""A chaos run of the pipeline: recorded news with the faults real feeds bring, replayed into
``news.raw`` while ``moodwire classify`` and ``moodwire aggregate`` are SIGKILLed at random
moments and restarted; then every item is accounted for.

Injected: repeats of items (the same id again, later), items dated three days back (late),
items dated 2100 (future), undecodable records, a title holding a NUL byte, and an outage of
classify (stopped for ``outage`` seconds: at the replay's pace hours of news, far more than the
lateness). It runs at the shipped lateness and future tolerance. The check reads what the topics
hold:

- every decodable ``news.raw`` item reached ``news.scored`` (or classify dead-lettered it);
- per ``news.raw`` partition, in offset order, the documented policy decides which items count
  under each key (not late when the record that brought that reading entered news.raw, not
  future) — written here apart from the fold, from the input alone (invariant I8), with every
  ``news.scored`` record's stamp checked against it — and the aggregate's dead letters hold
  exactly the late and future ones;
- every final window equals a pandas computation over the counted records: ``lost`` is what
  windows lack, ``double`` what they hold too much, each summed over windows of every span.

``bench/bench_chaos.py`` runs it with ≥ 10 kills on both brokers; the tests run a short one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from moodwire.records import NewsItem, item_id
from moodwire.settings import Settings
from moodwire.spans import parse_span
from moodwire.topics import NEWS_RAW, SENTIMENT_WINDOWS
from streams.ingest.replay import read_recorded

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "streams" / "samples" / "svb_2023_demo.csv"
WINDOWS = "5m,1h/5m,24h/1h"
# The shipped settings (moodwire/settings.py): a proof must hold at the settings users run.
LATENESS = parse_span(Settings.model_fields["aggregate_lateness"].default)
FUTURE = parse_span(Settings.model_fields["aggregate_future_tolerance"].default)


@dataclass
class Report:
    sent: dict[str, int] = field(default_factory=dict)
    kills: dict[str, int] = field(default_factory=lambda: {"classify": 0, "aggregate": 0})
    final_windows: int = 0
    dead: dict[str, int] = field(default_factory=dict)
    lost_in_classify: int = 0
    lost: int = 0
    double: int = 0
    wrong_dead: int = 0
    uninjected_dead: int = 0  # items late or future by the policy that were not injected as such
    unmatched_stamps: int = 0  # news.scored records whose input time matches none computed from news.raw
    reread_late: int = 0  # repeats the model read under another key than the first reading, late there
    outage_news: int = 0  # items that reached news.raw while classify was down
    broker_restarts: int = 0
    exits: dict[str, int] = field(default_factory=dict)  # stages that exited by themselves, started again
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)  # windows that differ, the first few

    def line(self) -> str:
        return (f"items in {self.sent}; kills {self.kills}; classify down for {self.outage_news} items; broker "
                f"restarts {self.broker_restarts}; stages that exited and were started again {self.exits}; final windows {self.final_windows}; dead letters "
                f"{self.dead}; lost {self.lost} (in classify {self.lost_in_classify}), double {self.double}, "
                f"dead letters against the policy {self.wrong_dead}, of items not injected late or future "
                f"{self.uninjected_dead}, with input times unlike news.raw's {self.unmatched_stamps}; repeats read under "
                f"another key and late there {self.reread_late}; aggregate peak RSS {self.peak_rss_mb:.0f} MB; "
                f"{self.seconds:.0f} s" + "".join(f"\n  {e}" for e in self.examples))


def faulty_input(n: int | None, seed: int) -> tuple[list[bytes | NewsItem], dict[str, int]]:
    """The recorded demo news in publish order with repeats, late, future and garbage mixed in."""
    rng = random.Random(seed)
    items = read_recorded(DEMO).items[:n]
    out: list[bytes | NewsItem] = []
    counts = {"news": len(items), "repeats": 0, "late": 0, "future": 0, "undecodable": 0}
    for i, item in enumerate(items):
        out.append(item)
        if rng.random() < 0.08 and i > 10:  # a repeat of an earlier item (another replica, a re-publish)
            out.append(items[rng.randrange(max(0, i - 40), i)])
            counts["repeats"] += 1
        if rng.random() < 0.015 and i > 50:
            out.append(_variant(item, "late", published_at=item.published_at - timedelta(days=3)))
            counts["late"] += 1
        if rng.random() < 0.005:
            out.append(_variant(item, "2100", published_at=datetime(2100, 1, 1, tzinfo=timezone.utc)))
            counts["future"] += 1
        if rng.random() < 0.005:
            out.append(b'{"title": "half a record' + str(i).encode())
            counts["undecodable"] += 1
        if i == len(items) // 2:  # a feed's NUL byte: cleaned (moodwire.records), counted like any other
            out.append(_variant(item, "NUL", title=f"{item.title} \u0000(NUL)"))
            counts["nul"] = 1
    return out, counts


def _variant(item: NewsItem, tag: str, **update) -> NewsItem:
    """Another item (its own id) like ``item``."""
    title = update.pop("title", f"{item.title} ({tag})")
    return item.model_copy(update={"id": item_id(None, item.source, title), "title": title, **update})


class Stage:
    """One pipeline stage as a restartable process (its own session, so SIGKILL takes it whole)."""

    def __init__(self, name: str, args: list[str], env: dict, log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.process: subprocess.Popen | None = None
        self.peak_kb = 0

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "moodwire_cli", *self.args], env=self.env,
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def peak(self) -> None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.peak()
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _env(bootstrap: str, home: Path, model: Path | None, lateness: timedelta) -> dict:
    env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": bootstrap, "MOODWIRE_HOME": str(home),
           "MOODWIRE_WATCHLISTS": str(ROOT / "config" / "watchlists.example.yaml"), "OMP_NUM_THREADS": "1",
           "MOODWIRE_AGGREGATE_WINDOWS": WINDOWS, "MOODWIRE_AGGREGATE_LATENESS": f"{int(lateness.total_seconds())}s",
           "MOODWIRE_AGGREGATE_FUTURE_TOLERANCE": "15m", "MOODWIRE_AGGREGATE_IDLE": "5s",
           "MOODWIRE_AGGREGATE_EMIT_INTERVAL_MS": "500", "MOODWIRE_MAX_BATCH": "32"}
    if model is not None:
        env["MOODWIRE_MODEL"] = str(model)
    return env


def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of ``topic``, from the start to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    out, deadline = [], time.monotonic() + 120
    while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            out += records
    consumer.close()
    return out


def _lag_zero(port: int) -> bool:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return False
    lags = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if "_consumer_lag{" in line]
    return bool(lags) and not any(lags)


def run(bootstrap: str, work: Path, kills: int, model: Path | None = None, n: int | None = None,
        rate: float = 12.0, seed: int = 1, lateness: timedelta = LATENESS, outage: float = 0.0,
        restart_broker=None, say=print) -> Report:
    """Replay the faulty input at ``rate`` records/s with ``kills`` SIGKILLs spread over it,
    classify stopped for ``outage`` seconds from a third of the way in and, given
    ``restart_broker`` (a callable that stops the broker and starts it again on its data), the
    broker restarted two thirds of the way in. A stage that exits is started again, as compose's
    ``restart: unless-stopped`` does (counted in ``exits``)."""
    from bench.chaos_check import check  # the independent expectation (pandas)

    started = time.monotonic()
    rng = random.Random(seed)
    records, counts = faulty_input(n, seed)
    report = Report(sent=counts)
    work.mkdir(parents=True, exist_ok=True)
    ports = {"classify": _free(), "aggregate": _free()}
    stages = {name: Stage(name, args, {**_env(bootstrap, work / name, model, lateness), "MOODWIRE_METRICS_PORT": str(ports[name])},
                          work / f"{name}.log")
              for name, args in (("classify", ["classify", "--device", "cpu"]), ("aggregate", ["aggregate", "--no-sink"]))}
    for stage in stages.values():
        stage.start()
    span = len(records) / rate
    plan = sorted(rng.uniform(0.05, 1.0) * span for _ in range(kills))
    victims = [("classify", "aggregate")[i % 2] for i in range(kills)]
    rng.shuffle(victims)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    down, went_down = ((span / 3, span / 3 + outage) if outage else None), None
    broker_at = 2 * span / 3 if restart_broker is not None else None

    def revive() -> None:  # compose's restart policy: a stage that exited starts again
        for stage in stages.values():
            if stage.process.poll() is not None and not (stage.name == "classify" and down and went_down is not None):
                report.exits[stage.name] = report.exits.get(stage.name, 0) + 1
                stage.start()

    t0 = time.monotonic()
    try:
        for i, record in enumerate(records):
            revive()
            if broker_at is not None and time.monotonic() - t0 >= broker_at:
                broker_at = None
                restart_broker()
                report.broker_restarts += 1
            if down and went_down is None and time.monotonic() - t0 >= down[0]:
                stages["classify"].kill()  # the outage: classify gone, the news goes on
                went_down = i
            if down and time.monotonic() - t0 >= down[1]:
                stages["classify"].start()
                report.outage_news = sum(1 for r in records[went_down:i] if not isinstance(r, bytes))
                down = None
            while plan and time.monotonic() - t0 >= plan[0]:
                plan.pop(0)
                victim = stages[victims.pop(0)]
                if down and victim.name == "classify" and time.monotonic() - t0 >= down[0]:
                    victim = stages["aggregate"]  # classify is down: the aggregate takes this kill
                victim.kill()
                report.kills[victim.name] += 1
                victim.start()
            if isinstance(record, bytes):
                producer.send(NEWS_RAW, key=b"garbage", value=record)
            else:
                producer.send(NEWS_RAW, key=record.id.encode(), value=record.encode())
            time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        producer.flush()
        if down:  # the input ended during the outage
            stages["classify"].start()
            report.outage_news = sum(1 for r in records[went_down or 0:] if not isinstance(r, bytes))
        for victim in victims:  # kills not yet due when the input ended: now, before it settles
            stages[victim].kill()
            report.kills[victim] += 1
            stages[victim].start()
        deadline = time.monotonic() + 600
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:  # both stages caught up, three checks in a row
            time.sleep(5)
            revive()
            quiet = quiet + 1 if all(_lag_zero(p) for p in ports.values()) else 0
        settled, before = 0, -1
        while settled < 2 and time.monotonic() < deadline:  # the heartbeat closed the last windows
            time.sleep(8)
            revive()
            now = len(read_topic(bootstrap, SENTIMENT_WINDOWS))
            settled, before = (settled + 1 if now == before else 0), now
        stages["aggregate"].peak()
    finally:
        producer.close()
        for stage in stages.values():
            stage.kill(signal.SIGTERM)
    report.peak_rss_mb = stages["aggregate"].peak_kb / 1024
    check(bootstrap, report, lateness)
    report.seconds = time.monotonic() - started
    say(report.line())
    return report


def _free() -> int:
    from moodwire.broker import free_port

    return free_port()


__all__ = ["run", "Report", "faulty_input", "read_topic", "WINDOWS", "LATENESS", "FUTURE"]
