"""Sessions, CSRF and the script policy against a real ``moodwire dashboard`` (waitress) and a
real headless Chromium: signed out means signed out, a removed user or a new hash ends
sessions, sessions end when idle or old, every sign-in gets a new session id, no sign-in from
another site, and Dash runs under a policy that stops injected inline scripts."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from dashboards.passwords import hash_password
from moodwire.broker import free_port
from moodwire.store import dashboard_sessions, open_store
from tests.dashboards.live import form_token, sign_in, sign_in_chromium, signed_in, start_dashboard
from tests.dashboards.seed import seed
from tests.dashboards.test_browser import browser, wait_for  # noqa: F401  (the Chromium fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COOKIE = "moodwire_session"


@pytest.fixture
def server(tmp_path, request):
    """A dashboard of its own (the tests change its users file): ana with an older PBKDF2 hash,
    bo with Argon2id; settings from the test's parameter."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    seed(open_store(url))
    users = {"ana": hash_password("correct horse", iterations=20_000), "bo": hash_password("battery staple")}
    proc, base, log = start_dashboard(tmp_path, url, users=users, **getattr(request, "param", {}))
    yield {"base": base, "url": url, "home": tmp_path, "log": log, "users": tmp_path / "users.yaml"}
    proc.terminate()
    proc.wait(30)


def layout(client: requests.Session, base: str) -> requests.Response:
    return client.get(base + "/_dash-layout", timeout=10)


def with_cookie(cookie: str) -> requests.Session:
    """Another client holding a copy of a cookie (what a thief or the back button would have)."""
    other = requests.Session()
    other.cookies.set(COOKIE, cookie)
    return other


def logout_token(client: requests.Session, base: str) -> str:
    """The sign-out form's token, from the page frame as Dash receives it."""
    def walk(node):
        if isinstance(node, dict):
            if node.get("props", {}).get("name") == "csrf":
                return node["props"]["value"]
            return next((t for t in map(walk, node.values()) if t), None)
        if isinstance(node, list):
            return next((t for t in map(walk, node) if t), None)
        return None
    return walk(json.loads(layout(client, base).text))


def test_sign_out_ends_the_session_on_the_server(server):
    base = server["base"]
    ana = signed_in(base)
    cookie = ana.cookies.get(COOKIE)
    assert layout(ana, base).status_code == 200 and layout(with_cookie(cookie), base).status_code == 200
    assert ana.get(base + "/logout", timeout=10).status_code == 200  # a GET only asks
    assert layout(ana, base).status_code == 200
    assert ana.post(base + "/logout", data={"csrf": "forged"}, allow_redirects=False, timeout=10).status_code == 403
    assert layout(ana, base).status_code == 200
    answer = ana.post(base + "/logout", data={"csrf": logout_token(ana, base)}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert layout(with_cookie(cookie), base).status_code == 401  # the old cookie opens nothing
    with open_store(server["url"]).connect() as conn:
        assert conn.execute(select(dashboard_sessions.c.user)).scalars().all() == []


def test_removing_a_user_or_changing_a_hash_ends_their_sessions_at_once(server):
    base = server["base"]
    ana, bo = signed_in(base), signed_in(base, "bo", "battery staple")
    assert layout(ana, base).status_code == 200 and layout(bo, base).status_code == 200
    text = server["users"].read_text()
    anas = next(line for line in text.splitlines() if line.strip().startswith("ana:"))
    # No restart: the dashboard reads the file again when it changes.
    server["users"].write_text(f"users:\n  ana: '{hash_password('new password')}'\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (layout(ana, base).status_code, layout(bo, base).status_code) != (401, 401):
        time.sleep(0.3)
    assert (layout(ana, base).status_code, layout(bo, base).status_code) == (401, 401), anas
    assert sign_in(base, "bo", "battery staple").status_code == 401
    assert sign_in(base, "ana", "correct horse").status_code == 401
    assert signed_in(base, "ana", "new password")
    log = server["log"].read_text()
    assert "users file" in log and "no longer in the users file" in log and "the hash changed" in log


def test_every_sign_in_gets_a_new_session_id_and_the_store_keeps_only_its_hash(server):
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    base = server["base"]
    client = requests.Session()
    client.get(base + "/login", timeout=10)
    before = client.cookies.get(COOKIE)  # what a fixating attacker could have planted
    assert sign_in(base, "ana", "correct horse", client).status_code == 302
    first = client.cookies.get(COOKIE)
    assert sign_in(base, "ana", "correct horse", client).status_code == 302
    second = client.cookies.get(COOKIE)
    assert len({before, first, second}) == 3
    assert layout(with_cookie(before), base).status_code == 401
    assert layout(with_cookie(first), base).status_code == 401  # the sign-in in this client ended it
    assert layout(with_cookie(second), base).status_code == 200
    app = Flask("read")
    app.secret_key = (server["home"] / "dashboard.secret").read_bytes()
    sid = SecureCookieSessionInterface().get_signing_serializer(app).loads(second)["sid"]
    with open_store(server["url"]).connect() as conn:
        stored = conn.execute(select(dashboard_sessions.c.id_hash)).scalars().all()
    assert stored == [hashlib.sha256(sid.encode()).hexdigest()] and sid not in stored


def test_an_older_hash_is_upgraded_to_argon2id_at_sign_in_and_the_session_holds(server):
    base = server["base"]
    assert "pbkdf2_sha256$" in server["users"].read_text()
    ana = signed_in(base)
    text = server["users"].read_text()
    assert "pbkdf2_sha256$" not in text and text.count("$argon2id$") == 2
    time.sleep(1.5)  # the dashboard reads its own write again: the session was carried over
    assert layout(ana, base).status_code == 200
    assert signed_in(base)  # the same password against the new hash


@pytest.mark.parametrize("server", [{"MOODWIRE_DASHBOARD_SESSION_IDLE": "3s",
                                     "MOODWIRE_DASHBOARD_SESSION_LIFETIME": "7s"}], indirect=True)
def test_sessions_end_when_idle_and_at_their_lifetime(server):
    base = server["base"]
    idle = signed_in(base)
    time.sleep(3.5)
    assert layout(idle, base).status_code == 401
    busy = signed_in(base)
    started = time.monotonic()
    while time.monotonic() - started < 6.0:  # a request a second: never idle
        assert layout(busy, base).status_code == 200
        time.sleep(1.0)
    time.sleep(max(0.0, 7.5 - (time.monotonic() - started)))
    assert layout(busy, base).status_code == 401  # 7 s after its sign-in, however active


def test_a_sign_in_needs_the_forms_token_and_posts_from_another_site_are_refused(server):
    base = server["base"]
    client = requests.Session()
    token = form_token(client.get(base + "/login", timeout=10).text)
    creds = {"username": "ana", "password": "correct horse"}
    assert client.post(base + "/login", data=creds, timeout=10).status_code == 403  # no token
    other = requests.Session()
    form_token(other.get(base + "/login", timeout=10).text)
    assert other.post(base + "/login", data={**creds, "csrf": token}, timeout=10).status_code == 403  # not its own
    evil = client.post(base + "/login", data={**creds, "csrf": token}, headers={"Origin": "http://evil.example"},
                        allow_redirects=False, timeout=10)
    assert evil.status_code == 403 and "another site" in evil.text
    assert layout(client, base).status_code == 401
    ana = signed_in(base)
    callback = {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [], "state": [],
                "changedPropIds": []}
    refused = ana.post(base + "/_dash-update-component", json=callback, headers={"Origin": "https://evil.example"},
                       timeout=10)
    assert refused.status_code == 403
    same = ana.post(base + "/_dash-update-component", json=callback, headers={"Origin": base}, timeout=10)
    assert same.status_code != 403


class _Attacker(http.server.BaseHTTPRequestHandler):
    """A page on another site that signs the visitor in to the dashboard as the attacker."""
    target = ""

    def do_GET(self):  # noqa: N802
        page = (f'<form id="f" method="post" action="{self.target}/login"><input name="username" value="ana">'
                '<input name="password" value="correct horse"></form><script>document.getElementById("f").submit()'
                '</script>')
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(page.encode())

    def log_message(self, *args):
        pass


def test_in_chromium_no_sign_in_from_another_site_and_injected_scripts_do_not_run(server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    base = server["base"]
    browser.delete_all_cookies()
    _Attacker.target = base
    port = free_port()
    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Attacker)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        browser.get(base + "/login")  # the victim has the dashboard's cookie (its form token) already
        browser.get(f"http://localhost:{port}/")  # another site: it posts the attacker's credentials
        time.sleep(2.0)
        assert "another site" in browser.page_source or "expired" in browser.page_source
        browser.get(base + "/")
        wait_for(browser, "#username")  # not signed in
    finally:
        site.shutdown()
    browser.get_log("browser")  # forget what came before

    browser.find_element(By.ID, "username").send_keys("bo")
    browser.find_element(By.ID, "password").send_keys("battery staple")
    browser.find_element(By.ID, "sign-in").click()
    shots = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
    for path, ready in (("/?range=24h", "#heatmap .main-svg"), ("/topic?topic=Macro&range=24h", "#trend .main-svg"),
                        ("/alerts?range=24h", "#alert-list .alert-card")):
        browser.get(base + path)
        wait_for(browser, ready)
        time.sleep(1.0)
        browser.save_screenshot(str(shots / f"csp-{path.split('?')[0].strip('/') or 'overview'}.png"))
    blocked = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert blocked == [], blocked  # Dash and Plotly run whole under the policy
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                           "document.body.appendChild(s);")
    time.sleep(0.5)
    assert browser.execute_script("return window.injected === undefined")
    assert any("Content Security Policy" in e["message"] for e in browser.get_log("browser"))
    # Signed out elsewhere: the open page goes to the sign-in page at its next request.
    browser.get(base + "/?range=24h")
    wait_for(browser, "#heatmap .main-svg")
    with open_store(server["url"]).begin() as conn:
        conn.execute(dashboard_sessions.delete())
    browser.find_element(By.CSS_SELECTOR, "#nav-alerts").click()
    wait_for(browser, "#username", timeout=15)
    assert "next=%2Falerts" in browser.current_url


def test_in_chromium_acknowledge_acts_on_the_alert_shown_when_a_new_one_arrived_since(server, browser):  # noqa: F811
    """The page was drawn; a new alert arrived (first in the list now); the click on the first
    card's Acknowledge still acknowledges the alert that card showed."""
    from datetime import timedelta, timezone

    from selenium.webdriver.common.by import By

    from alerts.outbox import record_event
    from alerts.routing import Destination
    from moodwire.records import AlertEvent
    from moodwire.store import alert_acks, alert_events

    base = server["base"]
    sign_in_chromium(browser, base, "bo", "battery staple", "/alerts?range=24h")
    wait_for(browser, "#alert-list .alert-card.alert-firing", text="negative-turn on Macro")
    browser.find_element(By.CSS_SELECTOR, "#live input").click()  # no live refresh: the page stays as drawn
    time.sleep(1.0)
    first = browser.find_element(By.CSS_SELECTOR, "#alert-list .alert-card")
    assert "negative-turn on Macro" in first.text
    engine = open_store(server["url"])
    with engine.connect() as conn:
        [(starts,)] = conn.execute(select(alert_events.c.starts_at).where(alert_events.c.fingerprint == "fp-macro"))
    newer = AlertEvent(fingerprint="fp-crypto", rule="volume-spike", topic="Crypto", status="firing", value=9.0,
                       threshold=3.0, window="1h", starts_at=starts.replace(tzinfo=timezone.utc) + timedelta(minutes=50),
                       seq=1, severity="warning")
    record_event(engine, newer, [Destination("hook", "route", ("rule", "topic"), timedelta(0), timedelta(0),
                                             timedelta(hours=4))])
    first.find_element(By.CSS_SELECTOR, "button.ack").click()
    wait_for(browser, "#action-note", text="negative-turn on Macro acknowledged by bo")
    with engine.connect() as conn:
        assert conn.execute(select(alert_acks.c.fingerprint, alert_acks.c.acked_by)).all() == [("fp-macro", "bo")]
