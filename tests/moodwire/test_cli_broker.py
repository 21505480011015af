"""`moodwire broker` as a user runs it: a real process, a real kafka-python client."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer

from moodwire.broker import free_port, port_is_free

pytestmark = pytest.mark.integration


def _default_signals() -> None:
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def _start(port: int) -> tuple[subprocess.Popen, list[str]]:
    # The command's signals as in a terminal: a run under nohup (or a background job) inherits
    # SIGHUP / SIGINT ignored, and the SIGHUP case would then test nohup, not the command.
    proc = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "broker", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_default_signals)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("bootstrap:"):
            return proc, lines
    proc.kill()
    raise AssertionError("broker did not report its bootstrap address:\n" + "\n".join(lines))


def test_broker_command_roundtrips_and_stops_on_sigint():
    port = free_port()
    proc, lines = _start(port)
    try:
        assert f"bootstrap: 127.0.0.1:{port}" in lines[-1]
        assert "news.raw" in lines[0] and "4 partitions" in lines[0]
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", acks="all")
        producer.send("news.raw", key=b"k", value=b"hello").get(timeout=30)
        producer.close()
        consumer = KafkaConsumer("news.raw", bootstrap_servers=f"127.0.0.1:{port}", group_id="cli-test",
                                 auto_offset_reset="earliest", session_timeout_ms=10000,
                                 heartbeat_interval_ms=1000, fetch_max_wait_ms=50)
        values = []
        deadline = time.monotonic() + 30
        while not values and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                values.extend(r.value for r in records)
        consumer.close()
        assert values == [b"hello"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "broker stopped" in out
    _assert_nobody_serves(port)


def test_broker_command_refuses_a_taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "moodwire_cli", "broker", "--port", str(port)],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help():
    for args in (["--help"], ["broker", "--help"], ["topics", "create", "--help"], ["train", "--help"],
                 ["evaluate", "--help"]):
        result = subprocess.run([sys.executable, "-m", "moodwire_cli", *args], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        assert "Usage: moodwire" in result.stdout


def test_bad_setting_is_one_clear_line():
    result = subprocess.run([sys.executable, "-m", "moodwire_cli", "topics", "create"], capture_output=True,
                            text=True, timeout=60, env={"MOODWIRE_KAFKA_PARTITIONS": "lots", "PATH": "/usr/bin"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: invalid settings: MOODWIRE_KAFKA_PARTITIONS='lots': "
                                     "Input should be a valid integer, unable to parse string as an integer")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_the_broker_child_never_outlives_the_command(sig):
    port = free_port()
    proc, _ = _start(port)
    children = [int(c) for c in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
    assert children, "moodwire broker started no broker process"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not any(_alive(c) for c in children), f"broker child left running after {sig.name}"
    _assert_nobody_serves(port)


def _assert_nobody_serves(port: int) -> None:
    # Nobody listens: a connection is refused and the port binds as `moodwire broker` binds it
    # (SO_REUSEADDR: a TIME_WAIT left by the killed broker's last connection is not a listener;
    # a plain bind failed on one in CI).
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert port_is_free("127.0.0.1", port), f"port {port} still has a listener"


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_hash_password_reads_stdin_and_prints_only_the_hash():
    from dashboards.passwords import verify_password

    done = subprocess.run([sys.executable, "-m", "moodwire_cli", "hash-password"], input="correct horse\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()  # the hash and nothing else: `... > hash` gives a usable entry
    assert verify_password("correct horse", line)
    empty = subprocess.run([sys.executable, "-m", "moodwire_cli", "hash-password"], input="",
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and "no password given" in empty.stderr and empty.stdout == ""
    argument = subprocess.run([sys.executable, "-m", "moodwire_cli", "hash-password", "--password", "x"],
                              capture_output=True, text=True, timeout=120)
    assert argument.returncode == 2  # never on the command line (the process list shows it)


def test_classify_names_a_bad_watchlist_file_or_a_missing_broker_in_one_line_before_loading_the_model(tmp_path):
    """Before, `moodwire classify` with no broker loaded the model for ~25 s, logged ~30 s of
    retries and ended with 22 lines; a watchlist file with a YAML syntax error took 8 lines."""
    import os

    bad = tmp_path / "lists.yaml"
    bad.write_text("watchlists:\n  - name: x\n    keywords: [a, b\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOODWIRE_")},
           "MOODWIRE_HOME": str(tmp_path), "MOODWIRE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    for extra, line in (({"MOODWIRE_WATCHLISTS": str(bad)},
                         f"error: watchlist file {bad} is not valid YAML: line 4, column 1: while parsing a flow "
                         "sequence expected ',' or ']', but got '<stream end>'"),
                        ({}, f"error: no Kafka broker answers at {env['MOODWIRE_KAFKA_BOOTSTRAP']} within 8 s (set "
                             "MOODWIRE_KAFKA_BOOTSTRAP, or start one with `moodwire broker`)")):
        done = subprocess.run([sys.executable, "-m", "moodwire_cli", "classify"], env={**env, **extra},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stdout == "", done.stdout  # the model was never loaded
        assert done.stderr.strip().splitlines() == [line]
