"""Failed sign-ins are limited per client address, per user name from one address and per user
name over browsers new to it (Flask-Limiter, device cookies): the 21st wrong password in a
minute is refused with 429, refusals are counted in /metrics, no client's failures stop another
client, and once the window has passed the right password works."""

from __future__ import annotations

import time

import pytest

from dashboards.app import create_app
from dashboards.passwords import hash_password
from moodwire.settings import load_settings
from moodwire.store import open_store
from tests.dashboards.live import form_token


def client_of(tmp_path, **env):
    settings = load_settings(environ={"MOODWIRE_HOME": str(tmp_path), **env})
    users = {"ana": hash_password("correct horse", iterations=1_000),
             "bo": hash_password("battery staple", iterations=1_000)}
    app = create_app(settings, open_store(f"sqlite:///{tmp_path / 'store.db'}"), users)
    return app.server.test_client()


def sign_in(client, user: str, password: str, address: str = "10.0.0.1"):
    token = form_token(client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True))
    return client.post("/login", data={"username": user, "password": password, "csrf": token},
                       environ_base={"REMOTE_ADDR": address})


def refused(client, limit: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith(f'moodwire_dashboard_signin_refused_total{{limit="{limit}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_the_21st_wrong_password_in_a_minute_from_one_address_is_refused(tmp_path):
    client = client_of(tmp_path)
    for i in range(20):  # twenty names, so only the per-address limit is reached
        assert sign_in(client, f"guess{i}", "nope").status_code == 401
    blocked = sign_in(client, "ana", "correct horse")
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.get_data(as_text=True)
    assert refused(client, "address") == 1
    assert sign_in(client, "ana", "correct horse", address="10.0.0.2").status_code == 302  # another address


def test_wrong_passwords_for_one_user_from_one_address_stop_only_that_address(tmp_path):
    client = client_of(tmp_path, MOODWIRE_DASHBOARD_SIGNIN_LIMIT="100/minute")
    for _ in range(20):
        assert sign_in(client, "ana", "nope").status_code == 401
    assert sign_in(client, "ana", "correct horse").status_code == 429
    assert refused(client, "user") == 1
    assert sign_in(client, "bo", "battery staple").status_code == 302  # other users from there: unaffected
    assert sign_in(client, "ana", "correct horse", address="10.0.0.9").status_code == 302  # ana elsewhere too


def test_a_guess_spread_over_addresses_stops_new_browsers_but_not_the_users_own(tmp_path):
    settings = load_settings(environ={"MOODWIRE_HOME": str(tmp_path),
                                      "MOODWIRE_DASHBOARD_SIGNIN_ACCOUNT_LIMIT": "20/minute"})
    app = create_app(settings, open_store(f"sqlite:///{tmp_path / 'store.db'}"),
                     {"ana": hash_password("correct horse", iterations=1_000)})
    own, attacker, new = app.server.test_client(), app.server.test_client(), app.server.test_client()
    assert sign_in(own, "ana", "correct horse", address="10.0.3.1").status_code == 302  # her browser, before
    for i in range(20):
        assert sign_in(attacker, "ana", "nope", address=f"10.0.1.{i}").status_code == 401
    assert sign_in(new, "ana", "correct horse", address="10.0.2.1").status_code == 429  # a browser new to ana
    assert refused(new, "account") == 1
    assert sign_in(own, "ana", "correct horse", address="10.0.3.1").status_code == 302  # her device cookie


def test_successful_sign_ins_do_not_count_and_the_limit_lifts_after_its_window(tmp_path):
    client = client_of(tmp_path, MOODWIRE_DASHBOARD_SIGNIN_LIMIT="3 per 2 second")
    for _ in range(5):
        assert sign_in(client, "ana", "correct horse").status_code == 302
    for _ in range(3):
        assert sign_in(client, "ana", "nope").status_code == 401
    assert sign_in(client, "ana", "correct horse").status_code == 429
    time.sleep(2.2)
    assert sign_in(client, "ana", "correct horse").status_code == 302


def test_a_malformed_limit_is_a_settings_error():
    from moodwire.errors import SettingsError

    with pytest.raises(SettingsError, match="MOODWIRE_DASHBOARD_SIGNIN_LIMIT.*20/minute"):
        load_settings(environ={"MOODWIRE_DASHBOARD_SIGNIN_LIMIT": "often"})


@pytest.mark.parametrize("secure", [False, True])
def test_the_session_cookie_is_secure_when_set(tmp_path, secure):
    client = client_of(tmp_path, MOODWIRE_DASHBOARD_COOKIE_SECURE=str(secure).lower())
    answer = sign_in(client, "ana", "correct horse")
    assert answer.status_code == 302
    cookies = answer.headers.getlist("Set-Cookie")
    assert {c.split("=")[0] for c in cookies} == {"moodwire_session", "moodwire_device"}
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("; Secure" in cookie) is secure
