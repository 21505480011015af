"""Shared fixtures: real Kafka brokers chosen by ``--broker=embedded|kafka|both``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "tweets"  # 600 rows of the MIT tweet sets, with their notice

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Every classify stage the tests start builds its ONNX model into this one folder (the cache is
# keyed by the exact weights), instead of once per test home.
os.environ.setdefault("MOODWIRE_ONNX_CACHE", str(Path(tempfile.gettempdir()) / f"moodwire-test-onnx-{os.getuid()}"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--broker", choices=["embedded", "kafka", "both"], default="embedded",
                     help="which real broker(s) the integration tests run against")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kafka" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--broker")
        brokers = ["embedded", "kafka"] if choice == "both" else [choice]
        metafunc.parametrize("kafka", brokers, indirect=True, scope="session")


def _free_port_pair() -> int:
    """A free port whose successor is free too (kafka-local's controller listens on port + 1)."""
    import socket

    from moodwire.broker import free_port

    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


class _ApacheKafka:
    """scripts/kafka-local run, in a temporary data directory, on a free pair of ports."""

    def __init__(self, data: Path) -> None:
        self.port = _free_port_pair()
        self.data = data
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "kafka-local"), "run", "--port", str(self.port), "--data", str(data)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("READY"):
                self.ready.set()

    def wait(self, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Apache Kafka did not start:\n" + "\n".join(self.lines[-30:]))
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The bootstrap address of a running real broker with the Moodwire topics created."""
    from moodwire.broker import embedded_broker

    if request.param == "embedded":
        with embedded_broker(partitions=4) as broker:
            yield broker.bootstrap
        return
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.fail("--broker=kafka needs Java 17+ and Maven (see .ci/run)")
    yield from _apache_kafka_with_topics(tmp_path_factory.mktemp("apache-kafka"))


def _apache_kafka_with_topics(data: Path):
    from moodwire.topics import create_topics

    for attempt in range(3):  # a port found free can be taken before Kafka binds it: try fresh ports
        broker = _ApacheKafka(data / f"try{attempt}")
        try:
            bootstrap = broker.wait()
            break
        except RuntimeError as exc:
            if "already in use" not in str(exc) or attempt == 2:
                raise
    try:
        create_topics(bootstrap, 4, 1)
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names, so tests sharing a broker never collide."""
    return uuid.uuid4().hex[:10]


def dataset(name: str) -> str:
    """A labelled test set, by file name, all from the repository (a fresh clone with nothing
    beside it passes): ``topic_*.csv`` and ``sent_*.csv`` are the committed fixture's tweets;
    ``news_*.csv`` is written from them in the news sets' shape (a ``source`` column, word
    labels); ``replay.csv`` is the shipped demo sample of recorded feeds."""
    if name.startswith(("topic_", "sent_")):
        return str(FIXTURE / name)
    if name.startswith("news_"):
        return str(_news_like(Path(name).stem.split("_")[-1]))
    if name.startswith("entity_"):
        return str(_entity_like(Path(name).stem.split("_")[-1]))
    if name == "replay.csv":
        return str(ROOT / "streams" / "samples" / "svb_2023_demo.csv")
    raise ValueError(f"no test data named {name}")


def _entity_name(text: str) -> str:
    """A name the tweet mentions: its first cashtag, else its first capitalised word."""
    import re

    found = re.search(r"\$[A-Za-z]{1,6}\b", text) or re.search(r"\b[A-Z][A-Za-z]{2,}\b", text)
    return found.group(0) if found else text.split()[0]


def _entity_like(split: str) -> Path:
    """The fixture's tweets in the entity sets' shape (text, entity, start, end, label, source):
    each tweet with a name it mentions and its label, and pairs of tweets joined into one text
    whose two names carry each tweet's label (entities that can disagree)."""
    import csv

    out = Path(tempfile.gettempdir()) / f"moodwire-test-entity-{os.getuid()}" / f"entity_{split}.csv"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        words = {"0": "negative", "1": "positive", "2": "neutral"}
        with (FIXTURE / f"sent_{split}.csv").open(encoding="utf-8", newline="") as fh:
            rows = [(r["text"], words[r["label"]]) for r in csv.DictReader(fh)]
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["text", "entity", "start", "end", "label", "source"])
            for text, label in rows[: len(rows) // 2]:
                name = _entity_name(text)
                writer.writerow([text, name, text.find(name), text.find(name) + len(name), label, "single"])
            half = rows[len(rows) // 2:]
            for (a, la), (b, lb) in zip(half[0::2], half[1::2]):
                text = f"{a} ; {b}"
                for name, label in ((_entity_name(a), la), (_entity_name(b), lb)):
                    start = text.find(name)
                    writer.writerow([text, name, start, start + len(name), label, "joined"])
        tmp.replace(out)
    return out


def train_args() -> list[str]:
    """`moodwire train`'s data options for the test sets (its defaults name the development data)."""
    return ["--topic-train", dataset("topic_train.csv"), "--topic-valid", dataset("topic_valid.csv"),
            "--sentiment-train", f"tweets={dataset('sent_train.csv')}",
            "--sentiment-valid", f"tweets={dataset('sent_valid.csv')}"]


def _news_like(split: str) -> Path:
    """The fixture's tweets in the news sets' shape (text, label word, source in two values)."""
    import csv

    out = Path(tempfile.gettempdir()) / f"moodwire-test-news-{os.getuid()}" / f"news_{split}.csv"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        words = {"0": "negative", "1": "positive", "2": "neutral"}
        with (FIXTURE / f"sent_{split}.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["text", "label", "source"])
            writer.writerows([r["text"], words[r["label"]], ("wire", "press")[i % 2]] for i, r in enumerate(rows))
        tmp.replace(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model fine-tuned for a few seconds on the committed test fixture."""
    from models.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny") / "model"
    train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
        output=str(out), limit=96, epochs=2, batch_size=16, progress=False, checkpoint_every=0))
    return out


@pytest.fixture(scope="session")
def entity_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model with the entity head (targeted sentiment), fine-tuned for a few seconds on
    the test fixtures."""
    from models.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("entity") / "model"
    train(TrainConfig(
        topic_train=dataset("topic_train.csv"), topic_valid=dataset("topic_valid.csv"),
        sentiment_train=dataset("sent_train.csv"), sentiment_valid=dataset("sent_valid.csv"),
        entity_train=dataset("entity_train.csv"), entity_valid=dataset("entity_valid.csv"),
        output=str(out), limit=96, epochs=2, batch_size=16, progress=False, checkpoint_every=0))
    return out


@pytest.fixture
def fresh_embedded():
    """A new embedded broker for one test (topics created): tests that read a whole topic
    from the start (aggregation) get a broker of their own."""
    from moodwire.broker import embedded_broker

    with embedded_broker(partitions=4) as broker:
        yield broker.bootstrap


@pytest.fixture
def fresh_apache_kafka(request: pytest.FixtureRequest, tmp_path: Path):
    """A new Apache Kafka node for one test; only with --broker=kafka|both (it takes ~15 s)."""
    if request.config.getoption("--broker") == "embedded":
        pytest.skip("needs Apache Kafka: run with --broker=kafka or --broker=both (as .ci/run does)")
    yield from _apache_kafka_with_topics(tmp_path / "apache-kafka")


def _pg_bin(name: str) -> str | None:
    import glob

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway real PostgreSQL server on a free loopback port (trust auth), as a
    SQLAlchemy URL. Installed by ``scripts/setup --postgres`` (part of .ci/run)."""
    from moodwire.broker import free_port

    pg_ctl, initdb = _pg_bin("pg_ctl"), _pg_bin("initdb")
    if not pg_ctl or not initdb:
        pytest.fail("PostgreSQL is not installed: run scripts/setup --postgres (as .ci/run does)")
    import tempfile

    # Outside pytest's private (0700) temp folder: the server runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="moodwire-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        user = pwd.getpwnam("postgres")
        for path in (base, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    log = base / "server.log"
    made = subprocess.run(prefix + [initdb, "-D", str(data), "-A", "trust", "-U", "moodwire", "--no-sync"],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"initdb failed: {made.stdout}{made.stderr}")
    started = subprocess.run(prefix + [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                                       f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
                                       "start"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {started.stdout}{started.stderr}"
                    f"{log.read_text() if log.exists() else ''}")
    try:
        yield f"postgresql+psycopg://moodwire@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
