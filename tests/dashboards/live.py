"""A real ``moodwire dashboard`` process (waitress) for the tests, and signing in to it as a
browser does: the form's CSRF token first, then the POST."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from moodwire.broker import free_port

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def form_token(page: str) -> str:
    found = TOKEN.search(page)
    assert found, page[:500]
    return found.group(1)


def start_dashboard(home: Path, url: str, refresh_s: int = 5, users: dict[str, str] | None = None,
                    **env: str) -> tuple[subprocess.Popen, str, Path]:
    """``moodwire dashboard`` over the store at ``url``, with user ana ('correct horse') unless
    ``users`` are given (name → hash); returns the process, its base URL and its log once it
    answers."""
    from dashboards.passwords import hash_password

    users = users or {"ana": hash_password("correct horse", iterations=20_000)}
    path = home / "users.yaml"
    path.write_text("users:\n" + "".join(f"  {name}: '{stored}'\n" for name, stored in users.items()))
    port = free_port()
    environ = {**os.environ, "MOODWIRE_HOME": str(home), "MOODWIRE_STORE_URL": url,
               "MOODWIRE_DASHBOARD_USERS": str(path), "MOODWIRE_DASHBOARD_PORT": str(port),
               "MOODWIRE_DASHBOARD_REFRESH_S": str(refresh_s), **env}
    log = home / "dashboard.log"
    proc = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "dashboard"], env=environ, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(base + "/healthz", timeout=1)
            return proc, base, log
        except requests.ConnectionError:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)


def sign_in(base: str, user: str, password: str, browser: requests.Session | None = None) -> requests.Response:
    """Sign in as a browser does; the answer (302 on success) with ``browser`` holding the cookie."""
    browser = browser if browser is not None else requests.Session()
    token = form_token(browser.get(base + "/login", timeout=10).text)
    return browser.post(base + "/login", data={"username": user, "password": password, "csrf": token},
                        allow_redirects=False, timeout=10)


def signed_in(base: str, user: str = "ana", password: str = "correct horse") -> requests.Session:
    browser = requests.Session()
    answer = sign_in(base, user, password, browser)
    assert answer.status_code == 302, answer.text[:300]
    return browser


def sign_in_chromium(browser, base: str, user: str, password: str, next_path: str = "/") -> None:
    """Sign in with the form in a real browser (its cookies cleared first), landing on ``next_path``."""
    from urllib.parse import quote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.delete_all_cookies()
    browser.get(f"{base}/login?next={quote(next_path)}")
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "username"))).send_keys(user)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()
