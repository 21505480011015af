"""Screenshots of every dashboard page of a running demo, and of a back-test report, in headless
Chromium (Debian's chromium + chromedriver, as the browser tests use): what an analyst sees.

    .venv/bin/python scripts/screenshots.py [--out test-artifacts/screens] [--wait-for-alerts 2]

Starts ``moodwire demo`` on free ports in a temporary home, waits until the dashboard answers
and the demo has announced the given number of alerts, signs in, and saves each page whole
midway through the replay (``midway-*.png``: the overview at the demo's range, the watchlist,
the alerts); then, once the replay has finished, one PNG per page: the overview at 1h / 24h / 7d
and at the demo's own range, a topic, a watchlist with alerts, the drill-down of the first US
regional banks alert (its window picked on the chart), the alerts page, an unknown topic, a
custom range that cannot be read; then runs the README's back-test and saves its report. Stops
the demo with Ctrl-C's signal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def wait_for(out: Path, pattern: str, proc: subprocess.Popen, timeout_s: float, times: int = 1) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = out.read_text(errors="replace")
        if len(re.findall(pattern, text)) >= times:
            return text
        if proc.poll() is not None:
            raise SystemExit(f"the demo exited:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{pattern!r} did not appear {times} times in {timeout_s:.0f} s:\n{text[-3000:]}")
        time.sleep(1.0)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def shoot(driver, url: str, path: Path, ready: str, settle_s: float = 3.0) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, ready)))
    time.sleep(settle_s)  # the callbacks after the first render
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1600, min(max(1000, height + 40), 6000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1600, 1000)
    print(f"{path.name}: {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "screens")
    parser.add_argument("--wait-for-alerts", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from moodwire.broker import free_port

    home = Path(tempfile.mkdtemp(prefix="moodwire-screens-"))
    port = free_port()
    out = home / "demo.out"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOODWIRE_")}, "MOODWIRE_HOME": str(home),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    demo = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "demo", "--broker-port", str(free_port()),
                             "--dashboard-port", str(port)], env=env, cwd=ROOT, stdout=out.open("wb"),
                            stderr=subprocess.STDOUT)
    driver = None
    try:
        text = wait_for(out, r"dashboard answering", demo, 300)
        password = re.search(r"password (\S+)\)", text).group(1)
        demo_url = re.search(r"dashboard: (\S+)", text).group(1)
        wait_for(out, r"alert fired", demo, 900, args.wait_for_alerts)
        base = f"http://127.0.0.1:{port}"
        demo_query = demo_url.split("/", 3)[3]
        driver = browser()
        driver.get(base + "/login")
        driver.find_element("id", "username").send_keys("demo")
        driver.find_element("id", "password").send_keys(password)
        driver.find_element("id", "sign-in").click()
        time.sleep(2)
        custom = demo_query.lstrip("/?")
        watchlist = quote("watchlist:US regional banks")
        for name, path, ready in [("midway-overview-demo", "/?" + custom, "#overview-table"),
                                  ("midway-watchlist", f"/topic?{custom}&topic={watchlist}", "#trend .main-svg"),
                                  ("midway-alerts", f"/alerts?{custom}", "#alert-list")]:
            shoot(driver, base + path, args.out / f"{name}.png", ready)
        wait_for(out, r"replay finished", demo, 900)
        time.sleep(30)  # the last windows close (lateness) and the notifier delivers
        pages = [("overview-1h", "/?range=1h", "#overview-table"), ("overview-24h", "/?range=24h", "#overview-table"),
                 ("overview-7d", "/?range=7d", "#overview-table"), ("overview-demo", "/?" + custom, "#overview-table"),
                 ("topic", f"/topic?{custom}&topic=Financials", "#trend .main-svg"),
                 ("watchlist", f"/topic?{custom}&topic={quote('watchlist:US regional banks')}", "#trend .main-svg"),
                 ("alerts", f"/alerts?{custom}", "#alert-list"),
                 ("unknown-topic", f"/topic?{custom}&topic=Nonsense", "#trend"),
                 ("bad-custom-range", "/?range=custom&start=yesterday&end=now", "#range-error")]
        for name, path, ready in pages:
            shoot(driver, base + path, args.out / f"{name}.png", ready)
        # The drill-down: the window of the first alert on US regional banks, picked on the chart.
        alerts = home / "demo" / "notifications.jsonl"
        fired = [a for line in (alerts.read_text().splitlines() if alerts.exists() else [])
                 for a in json.loads(line)["alerts"]
                 if a["topic"] == "watchlist:US regional banks" and a["status"] == "firing" and a.get("window_start")]
        if fired:
            first = min(fired, key=lambda a: a["starts_at"])
            pick = f"&from={quote(first['window_start'][:16])}&to={quote(first['window_end'][:16])}"
            shoot(driver, base + f"/topic?{custom}&topic={watchlist}{pick}", args.out / "drill-down.png", "#headlines")
        report_dir = home / "backtest"
        subprocess.run([sys.executable, "-m", "moodwire_cli", "backtest", "streams/samples/svb_2023_demo.csv",
                        "--rules", "config/rules.feeds.yaml", "--watchlists", "config/watchlists.example.yaml",
                        "--expect", "config/backtest.svb-2023-demo.yaml", "--out", str(report_dir), "--no-progress"],
                       cwd=ROOT, env=env, check=False)
        report = report_dir / "report.html"
        started = time.monotonic()
        shoot(driver, report.as_uri(), args.out / "report.png", ".main-svg", settle_s=1.0)
        print(f"report.html: {report.stat().st_size / 1e6:.1f} MB, drawn in {time.monotonic() - started:.1f} s")
    finally:
        if driver is not None:
            driver.quit()
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(90)
        except subprocess.TimeoutExpired:
            demo.kill()
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
