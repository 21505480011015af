"""A damaged store: the commands say so in one line and exit 2; a store whose pages fail to
read gives a page saying so (headless Chromium), not HTTP 500s and an empty page. (A store
damaged under a running dashboard fails the same way once SQLite reads a page it has not
cached; the callbacks' error handler is the same.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from moodwire.broker import free_port
from moodwire.store import open_store
from tests.dashboards.seed import seed
from tests.dashboards.test_browser import ARTIFACTS, browser, start_dashboard, wait_for  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def seeded(path: Path) -> None:
    engine = open_store(f"sqlite:///{path}")
    seed(engine)
    engine.dispose()  # the last connection closed: the write-ahead log is checkpointed into the file


def damage(path: Path) -> None:
    """What a bad disk or a stray copy leaves: the header and the pages overwritten."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.write(b"\x00not sqlite any more\x00" * (min(size, 64 * 1024) // 21))


@pytest.mark.parametrize("command", [["dashboard"], ["store", "prune"]])
def test_a_damaged_store_file_is_one_line_and_exit_2(tmp_path, command):
    path = tmp_path / "store.db"
    seeded(path)
    damage(path)
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  ana: 'pbkdf2_sha256$20000$c2FsdA==$aGFzaA=='\n")
    env = {**os.environ, "MOODWIRE_HOME": str(tmp_path), "MOODWIRE_STORE_URL": f"sqlite:///{path}",
           "MOODWIRE_DASHBOARD_USERS": str(users), "MOODWIRE_DASHBOARD_PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "moodwire_cli", *command], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: the store {path} cannot be read (file is not a database): it is damaged;"), line
    assert "restore it from a backup" in line


def damage_the_tail(path: Path) -> None:
    """Damage the file's second half (the data pages; its header and schema pages intact): the
    store opens, and reading the news fails."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\xff" * (size - size // 2))


def test_a_store_damaged_mid_file_is_said_on_the_page_not_a_500(tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    path = tmp_path / "store.db"
    seeded(path)
    damage_the_tail(path)
    proc, base, _log = start_dashboard(tmp_path, f"sqlite:///{path}", refresh_s=2)
    try:
        browser.get(base + "/topic?topic=Macro&range=24h")
        wait_for(browser, "#username").send_keys("ana")
        browser.find_element(By.ID, "password").send_keys("correct horse")
        browser.find_element(By.ID, "sign-in").click()
        wait_for(browser, "#topic-title", text="Macro")
        note = wait_for(browser, "#store-note", text="cannot be read", timeout=60)
        assert f"The store {path} cannot be read (database disk image is malformed)" in note.text
        assert "restore it from a backup" in note.text
        assert "Reload the page once it is fixed" in note.text
        browser.save_screenshot(str(ARTIFACTS / "damaged-store.png"))
        metrics = requests.get(base + "/metrics", timeout=10).text
        assert 'status="500"' not in metrics, [m for m in metrics.splitlines() if "500" in m]
    finally:
        proc.terminate()
        proc.wait(30)
