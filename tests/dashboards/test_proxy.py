"""Sign-in limits behind a real reverse proxy (nginx on loopback, as docs/data-engineers.md
recommends a TLS proxy): with the proxy trusted, each client is counted by its own address, so
wrong passwords from one client stop neither another client's sign-in nor the same user's from
another client, and a client cannot pick its address by sending X-Forwarded-For itself.
Without the setting every client shares the proxy's address — the lock-out this guards against.

Clients are told apart by their source address: the whole of 127.0.0.0/8 is loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from dashboards.passwords import hash_password
from moodwire.broker import free_port
from tests.dashboards.live import form_token, start_dashboard

pytestmark = [pytest.mark.integration]

NGINX = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


class FromAddress(HTTPAdapter):
    """Connections from one loopback source address: one client."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def sign_in(browser: requests.Session, base: str, user: str, password: str, **headers) -> int:
    token = form_token(browser.get(base + "/login", timeout=10).text)
    return browser.post(base + "/login", data={"username": user, "password": password, "csrf": token},
                        headers=headers, allow_redirects=False, timeout=10).status_code


@pytest.fixture
def behind_nginx(tmp_path, request):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.fail("nginx is not installed: run scripts/setup --proxy (as scripts/test does)")
    users = {"ana": hash_password("correct horse", iterations=1_000),
             "bo": hash_password("battery staple", iterations=1_000)}
    proc, upstream, _ = start_dashboard(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", users=users,
                                        **({"MOODWIRE_DASHBOARD_TRUSTED_PROXY": request.param} if request.param else {}))
    root, port = tmp_path / "nginx", free_port()
    root.mkdir()
    (root / "nginx.conf").write_text(NGINX.format(root=root, port=port, upstream=upstream.rsplit(":", 1)[1]))
    server = subprocess.Popen([nginx, "-p", str(root), "-c", str(root / "nginx.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (root / "error.log").read_text()
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(10)
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("behind_nginx", ["127.0.0.1"], indirect=True)
def test_wrong_passwords_from_one_client_lock_out_no_other(behind_nginx):
    attacker = client("127.0.0.2")
    codes = [sign_in(attacker, behind_nginx, "ana", "nope") for _ in range(25)]
    assert codes == [401] * 20 + [429] * 5
    # a client cannot step out of its limit by naming another address itself
    assert sign_in(attacker, behind_nginx, "ana", "nope", **{"X-Forwarded-For": "127.0.0.77"}) == 429
    assert sign_in(client("127.0.0.3"), behind_nginx, "bo", "battery staple") == 302  # another client
    assert sign_in(client("127.0.0.4"), behind_nginx, "ana", "correct horse") == 302  # ana, from another client


@pytest.mark.parametrize("behind_nginx", [None], indirect=True)
def test_without_trusting_the_proxy_every_client_shares_its_address(behind_nginx):
    attacker = client("127.0.0.2")
    for _ in range(20):
        assert sign_in(attacker, behind_nginx, "ana", "nope") == 401
    assert sign_in(client("127.0.0.3"), behind_nginx, "bo", "battery staple") == 429
