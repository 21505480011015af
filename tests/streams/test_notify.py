"""``moodwire notify`` as a real process: the embedded broker, a real HTTP receiver on loopback
(webhook, Slack-compatible and apprise's json:// endpoint), a real SMTP server (aiosmtpd), the
SQLite outbox; receivers going down and up, silences from the CLI, SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kafka import KafkaProducer

from moodwire.broker import free_port
from moodwire.records import AlertEvent, DeadLetter, Evidence, decode
from moodwire.topics import ALERTS, DEADLETTER
from tests.streams.test_aggregate_worker import stop, wait_for_log
from tests.streams.test_classify import read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)


class Receiver:
    """An HTTP server that records every POST (path, headers, JSON body); it can be stopped
    (connection refused) and started again on the same port, or answer a chosen status."""

    def __init__(self) -> None:
        self.port = free_port()
        self.posts: list[tuple[str, dict, dict]] = []
        self.status = 200
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    def start(self) -> "Receiver":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    status = outer.status
                    if status == 200:
                        outer.posts.append((self.path, dict(self.headers), json.loads(body or b"{}")))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"nope")

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def on(self, path: str) -> list[tuple[str, dict, dict]]:
        with self.lock:
            return [p for p in self.posts if p[0] == path]


class Smtp:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                outer.messages.append(envelope)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def alert(fp: str, seq: int, status: str = "firing", topic: str = "Macro", severity: str = "critical",
          title: str = "Bank fails", episode: int = 0) -> AlertEvent:
    starts = T0 + timedelta(hours=episode)
    return AlertEvent(fingerprint=fp, rule="negative-turn", topic=topic, status=status, value=-0.42, threshold=-0.3,
                      window="1h", starts_at=starts, ends_at=starts + timedelta(hours=1) if status == "resolved" else None,
                      seq=seq, severity=severity, labels={"team": "risk"},
                      evidence=[Evidence(id=f"{fp}-{seq}", title=title, url="https://news.example/1", score=-0.9,
                                         published_at=T0)])


def send(bootstrap: str, events: list[AlertEvent], raw: list[bytes] = ()) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for e in events:
        producer.send(ALERTS, key=e.fingerprint.encode(), value=e.encode())
    for payload in raw:
        producer.send(ALERTS, key=b"junk", value=payload)
    producer.flush()
    producer.close()


# Every test's routing tree starts so: the hook by default, each group sent at once.
ROUTE = """
route:
  receiver: hook
  group_by: [rule, topic]
  group_wait: 0s
  group_interval: 0s
  routes:
"""


def write_config(tmp_path: Path, http: Receiver, smtp: Smtp | None = None, extra_receivers: str = "") -> Path:
    mail = (f"  - name: mail\n    email: {{to: [risk@example.org], from: moodwire@example.org, host: 127.0.0.1, "
            f"port: {smtp.port}}}\n") if smtp else ""
    mail_route = ("    - matchers: ['severity=\"critical\"']\n      receiver: mail\n      continue: true\n") if smtp else ""
    path = tmp_path / "notify.yaml"
    path.write_text(ROUTE + f"""{mail_route}    - matchers: ['topic="Energy"']
      receiver: slack
      continue: true
    - matchers: ['team="risk"']
      receiver: hook
receivers:
  - name: hook
    webhook: {{url: "http://127.0.0.1:{http.port}/hook"}}
  - name: slack
    slack: {{url: "http://127.0.0.1:{http.port}/slack"}}
{mail}{extra_receivers}delivery:
  retry_initial: 200ms
  retry_max: 1s
  timeout: 2s
""")
    return path


def start_notify(bootstrap: str, tmp_path: Path, config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": bootstrap, "MOODWIRE_HOME": str(tmp_path / "home"),
           "MOODWIRE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}", "MOODWIRE_NOTIFY_CONFIG": str(config)}
    return subprocess.Popen([sys.executable, "-m", "moodwire_cli", "notify"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MOODWIRE_HOME": str(tmp_path / "home"), "MOODWIRE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    return subprocess.run([sys.executable, "-m", "moodwire_cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def delivered(posts) -> list[tuple[str, int]]:
    """(fingerprint, seq) in arrival order, each notification once (by its idempotency key)."""
    seen, out = set(), []
    for _, headers, body in posts:
        key = headers["Idempotency-Key"]
        if key in seen:
            continue
        seen.add(key)
        out += [(a["fingerprint"], a["seq"]) for a in body["alerts"]]
    return out


def wait_until(predicate, what: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what}:\n" + log.read_text()[-3000:]
        time.sleep(0.2)


def test_every_channel_gets_its_alerts_and_a_receiver_down_then_up_gets_each_once_in_order(fresh_embedded, tmp_path):
    http, smtp = Receiver(), Smtp()  # the HTTP receiver starts down
    config = write_config(tmp_path, http, smtp, extra_receivers=(
        f"  - name: other\n    apprise: {{urls: [\"json://127.0.0.1:{0}/apprise\"]}}\n"))
    # apprise gets its own route: warning-level alerts go there as well as to the hook
    text = config.read_text().replace("    - matchers: ['team=\"risk\"']",
                                      "    - matchers: ['severity=\"warning\"']\n      receiver: other\n      continue: true\n"
                                      "    - matchers: ['team=\"risk\"']").replace("127.0.0.1:0/apprise",
                                                                                    f"127.0.0.1:{http.port}/apprise")
    config.write_text(text)
    events = [alert("m", 1), alert("e", 1, topic="Energy", title="<script>alert(1)</script> & Co"),
              alert("m", 2, "resolved"), alert("w", 1, topic="Earnings", severity="warning"), alert("e", 2, "resolved", topic="Energy")]
    send(fresh_embedded, events[:3])
    log = tmp_path / "notify.log"
    worker = start_notify(fresh_embedded, tmp_path, config, log)
    try:
        wait_for_log(log, "retrying in", 3, worker)  # the hook is down: retries with back-off
        assert smtp.messages  # other receivers are not held up by a receiver that is down
        http.start()
        send(fresh_embedded, events[3:])
        wait_until(lambda: len(delivered(http.on("/hook"))) == 5, "all five events at the hook", worker, log)
        wait_until(lambda: len(http.on("/slack")) >= 2 and http.on("/apprise"), "slack and apprise", worker, log)
        time.sleep(2)  # nothing more may come
        hook = delivered(http.on("/hook"))
        assert sorted(hook) == sorted((e.fingerprint, e.seq) for e in events)
        assert len(hook) == len(set(hook))
        for fp in ("m", "e"):
            assert [s for f, s in hook if f == fp] == [1, 2]  # per alert, in order
        slack = [p[2] for p in http.on("/slack")]
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in json.dumps(slack)
        assert "<script>" not in json.dumps(slack)
        apprise_posts = http.on("/apprise")
        assert "negative-turn on Earnings" in apprise_posts[0][2]["title"]
        parsed = [message_from_bytes(m.content, policy=default_policy) for m in smtp.messages]
        assert all(p["Subject"].startswith("Moodwire: ") and p["To"] == "risk@example.org" for p in parsed)
        mails = [p.get_content() for p in parsed]
        for e in events:  # the critical ones, each in exactly one mail
            assert sum(f"fingerprint {e.fingerprint}, seq {e.seq}" in m for m in mails) == \
                (1 if e.severity == "critical" else 0)
        history = cli(tmp_path, "notify", "history", "--json")
        rows = [json.loads(line) for line in history.stdout.splitlines()]
        hook_rows = [r for r in rows if r["receiver"] == "hook"]
        assert {r["status"] for r in hook_rows} == {"sent"} and max(r["attempts"] for r in hook_rows) >= 3
    finally:
        stop(worker)
        http.stop()
        smtp.close()
    assert worker.returncode == 0, log.read_text()[-3000:]


def test_a_4xx_is_recorded_as_failed_a_malformed_message_is_dead_lettered(fresh_embedded, tmp_path):
    http = Receiver().start()
    http.status = 404
    config = write_config(tmp_path, http)
    send(fresh_embedded, [alert("m", 1)], raw=[b"{not json"])
    log = tmp_path / "notify.log"
    worker = start_notify(fresh_embedded, tmp_path, config, log)
    try:
        wait_for_log(log, "failed for good", 1, worker)
        rows = cli(tmp_path, "notify", "history").stdout
        assert "failed" in rows and "HTTP 404" in rows
        letters = read_all(fresh_embedded, DEADLETTER, lambda r: decode(DeadLetter, r.value))
        assert [d.stage for d in letters] == ["notify"] and "AlertEvent" in letters[0].error
    finally:
        stop(worker)
        http.stop()


def test_a_silence_from_the_cli_holds_back_matching_alerts_and_its_expiry_restores_them(fresh_embedded, tmp_path):
    http = Receiver().start()
    config = write_config(tmp_path, http)
    added = cli(tmp_path, "silence", "add", "-m", 'topic="Macro"', "--for", "1h", "--comment", "known issue",
                "--by", "ana")
    assert added.returncode == 0, added.stderr
    sid = added.stdout.split()[1]
    assert "known issue" in cli(tmp_path, "silence", "list").stdout
    log = tmp_path / "notify.log"
    worker = start_notify(fresh_embedded, tmp_path, config, log)
    try:
        send(fresh_embedded, [alert("m", 1), alert("x", 1, topic="Earnings")])
        wait_until(lambda: delivered(http.on("/hook")) == [("x", 1)], "the unsilenced alert", worker, log)
        time.sleep(1.5)
        assert delivered(http.on("/hook")) == [("x", 1)]
        assert "silenced" in cli(tmp_path, "notify", "history").stdout
        assert cli(tmp_path, "silence", "expire", sid).returncode == 0
        wait_until(lambda: delivered(http.on("/hook")) == [("x", 1), ("m", 1)], "restored after expiry", worker, log)
        bad = cli(tmp_path, "silence", "add", "-m", "topic")
        assert bad.returncode == 2 and "is not name=value" in bad.stderr
    finally:
        stop(worker)
        http.stop()


def test_sigkill_of_the_notifier_neither_loses_nor_duplicates_a_notification(fresh_embedded, tmp_path):
    http = Receiver().start()
    config = write_config(tmp_path, http)
    # 7 alerts, each 5 episodes of firing (odd seq) then resolved (even seq), interleaved
    events = [alert(f"a{i % 7}", i // 7 + 1, "firing" if (i // 7) % 2 == 0 else "resolved",
                    topic=["Macro", "Earnings", "Currencies"][(i % 7) % 3], episode=(i // 7) // 2) for i in range(70)]
    log = tmp_path / "notify.log"
    worker = start_notify(fresh_embedded, tmp_path, config, log)
    kills = 2
    try:
        for k in range(kills):
            send(fresh_embedded, events[k * 25:(k + 1) * 25])
            wait_for_log(log, "notification", 1 + k, worker)
            time.sleep(random.uniform(0.1, 0.8))
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            worker = start_notify(fresh_embedded, tmp_path, config, log)
        send(fresh_embedded, events[kills * 25:])
        want = sorted((e.fingerprint, e.seq) for e in events)
        wait_until(lambda: sorted(delivered(http.on("/hook"))) == want, "every event delivered", worker, log, 120)
        time.sleep(2)
        got = delivered(http.on("/hook"))
        assert sorted(got) == want  # nothing lost, no (fingerprint, seq) under two notifications
        for fp in {f for f, _ in want}:
            assert [s for f, s in got if f == fp] == sorted(s for f, s in want if f == fp)
        # A notification in flight at a kill may be POSTed again, under the same key (receivers dedupe).
        keys = [h["Idempotency-Key"] for _, h, _ in http.on("/hook")]
        assert len(keys) - len(set(keys)) <= kills
    finally:
        stop(worker)
        http.stop()


def test_a_bad_configuration_stops_the_start_with_what_to_fix(tmp_path):
    path = tmp_path / "notify.yaml"
    path.write_text("route: {receiver: nobody}\nreceivers:\n  - {name: hook, webhook: {url: 'http://x'}}\n")
    result = cli(tmp_path, "notify", "--config-file", str(path))
    assert result.returncode == 2
    assert f"notifier configuration {path}" in result.stderr and "receiver 'nobody' is not defined" in result.stderr
    result = cli(tmp_path, "notify")
    assert result.returncode == 2 and "MOODWIRE_NOTIFY_CONFIG" in result.stderr


def test_an_event_the_store_refuses_is_dead_lettered_after_three_tries_and_the_next_is_sent(
        fresh_embedded, postgres_url, tmp_path):
    """The store's topic column holds 100 characters: PostgreSQL refuses an alert on a key
    longer than that (a watchlist with a long name) every time — a poison record; before,
    notify retried it for ever and delivered nothing after it."""
    import uuid

    from sqlalchemy import create_engine, text

    http = Receiver().start()
    config = write_config(tmp_path, http)
    db = f"notify_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {db}"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{db}"
    send(fresh_embedded, [alert("poison", 1, topic="watchlist:" + "long name " * 12), alert("healthy", 1)])
    log = tmp_path / "notify.log"
    env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": fresh_embedded, "MOODWIRE_HOME": str(tmp_path / "home"),
           "MOODWIRE_STORE_URL": url, "MOODWIRE_NOTIFY_CONFIG": str(config)}
    worker = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "notify"], env=env, stdout=log.open("ab"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: ("healthy", 1) in delivered(http.on("/hook")), "the healthy alert delivered", worker, log)
        wait_for_log(log, "alert poison seq 1 dead-lettered", 1, worker)
        letters = read_all(fresh_embedded, DEADLETTER, lambda r: decode(DeadLetter, r.value))
        [letter] = [d for d in letters if d.stage == "notify"]
        assert letter.reason == "failed" and "storing alert poison seq 1 failed 3 times" in letter.error
        assert "too long" in letter.error
        assert ("poison", 1) not in delivered(http.on("/hook"))
    finally:
        stop(worker)
        http.stop()


def test_no_receiver_token_header_or_password_reaches_a_log_the_history_or_the_store(fresh_embedded, tmp_path):
    """A webhook with a token in its path and query and an Authorization header, a Slack URL
    (its path is its token), an SMTP password: deliveries fail (down, then 500, then 404 for
    good), and no output holds any of the secrets."""
    from sqlalchemy import create_engine, text

    http = Receiver()  # down first: connection errors name the URL
    smtp_port = free_port()  # nothing listens: the mail fails too
    tokens = ["hooktok-7f3a9", "querytok-5c1d2", "hdrtok-0b8e4", "slacktok-9d2f6", "smtppw-4e7a1"]
    path = tmp_path / "notify.yaml"
    path.write_text(ROUTE + f"""    - {{matchers: ['topic="Macro"'], receiver: slack, continue: true}}
    - {{matchers: ['topic="Macro"'], receiver: mail, continue: true}}
    - {{matchers: ['topic="Macro"'], receiver: hook}}
receivers:
  - name: hook
    webhook: {{url: "http://127.0.0.1:{http.port}/hooks/{tokens[0]}?token={tokens[1]}",
               headers: {{Authorization: "Bearer {tokens[2]}"}}}}
  - name: slack
    slack: {{url: "http://127.0.0.1:{http.port}/services/T01/B02/{tokens[3]}"}}
  - name: mail
    email: {{to: [risk@example.org], from: moodwire@example.org, host: 127.0.0.1, port: {smtp_port},
             username: moodwire, password_env: TEST_SMTP_PASSWORD}}
delivery:
  retry_initial: 200ms
  retry_max: 500ms
  timeout: 2s
""")
    send(fresh_embedded, [alert("m", 1)])
    log = tmp_path / "notify.log"
    env = {**os.environ, "MOODWIRE_KAFKA_BOOTSTRAP": fresh_embedded, "MOODWIRE_HOME": str(tmp_path / "home"),
           "MOODWIRE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}", "MOODWIRE_NOTIFY_CONFIG": str(path),
           "TEST_SMTP_PASSWORD": tokens[4], "MOODWIRE_LOG_LEVEL": "DEBUG"}
    worker = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "notify"], env=env, stdout=log.open("ab"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_log(log, "retrying in", 6, worker)
        http.start()
        http.status = 500
        wait_for_log(log, "HTTP 500", 2, worker)
        http.status = 404
        wait_for_log(log, "failed for good", 2, worker)
    finally:
        stop(worker)
        http.stop()
    outputs = {"log": log.read_text(),
               "history": cli(tmp_path, "notify", "history").stdout,
               "history --json": cli(tmp_path, "notify", "history", "--json").stdout}
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.connect() as conn:
        for table in ("notify_attempts", "notify_batches", "notify_outbox"):
            outputs[table] = "\n".join(str(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {table}")))
    assert "POST http://127.0.0.1:" in outputs["log"] and "/***" in outputs["notify_attempts"]  # where, not how
    assert "HTTP 404" in outputs["history"]
    leaks = [(where, token) for where, body in outputs.items() for token in tokens if token in body]
    assert leaks == []
