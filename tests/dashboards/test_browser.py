"""End to end in a real headless Chromium (Debian's chromium + chromedriver, via Selenium):
``moodwire dashboard`` as a process over a seeded SQLite store. Screenshots of the main pages
go to test-artifacts/dashboard/."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from moodwire.store import alert_acks, open_store
from tests.dashboards.live import form_token, sign_in, sign_in_chromium, start_dashboard
from tests.dashboards.seed import XSS_TITLE, seed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


BANNER = "Test data: seeded headlines; every time shown is UTC."


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{home / 'store.db'}"
    seeded = seed(open_store(url))
    rules = home / "rules.yaml"  # the seeded alert's rule: drawn on Macro's chart
    rules.write_text("rules:\n  - name: negative-turn\n    topics: [Macro]\n    window: 1h\n"
                     "    when: {mean_below: -0.3}\n    recover: -0.1\n    min_count: 10\n")
    proc, base, log = start_dashboard(home, url, MOODWIRE_ALERT_RULES=str(rules),
                                      MOODWIRE_DASHBOARD_BANNER=BANNER)
    yield {"base": base, "url": url, "seeded": seeded, "log": log}
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or not Path(DRIVER).exists():
        pytest.fail("Chromium and chromedriver are needed (apt-get install chromium chromium-driver; "
                    "scripts/setup --browser does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console: CSP reports land there
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait_for(driver, css: str, timeout: float = 30, text: str | None = None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    if text is not None:
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def settled(fn, tries: int = 20):
    """Read the page again when Dash re-rendered it under our feet."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(tries - 1):
        try:
            return fn()
        except StaleElementReferenceException:
            time.sleep(0.25)
    return fn()


def test_unauthenticated_requests_are_refused(site):
    page = requests.get(site["base"] + "/topic?topic=Macro", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/topic")
    callback = requests.post(site["base"] + "/_dash-update-component", json={}, timeout=10)
    assert callback.status_code == 401
    layout = requests.get(site["base"] + "/_dash-layout", timeout=10, allow_redirects=False)
    assert layout.status_code == 401
    wrong = sign_in(site["base"], "ana", "nope")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    browser = requests.Session()
    token = form_token(browser.get(site["base"] + "/login", timeout=10).text)
    evil = browser.post(site["base"] + "/login", data={"username": "ana", "password": "correct horse", "csrf": token,
                                                       "next": "https://evil.example/"}, allow_redirects=False,
                        timeout=10)
    assert evil.status_code == 302 and evil.headers["Location"] == "/"  # no open redirect


def test_every_response_carries_the_security_headers_and_unknown_users_cost_a_hash(site):
    import statistics

    expected = None
    for path in ("/login", "/healthz", "/topic?topic=Macro", "/_dash-layout"):
        response = requests.get(site["base"] + path, allow_redirects=False, timeout=10)
        got = {k: response.headers.get(k) for k in ("Content-Security-Policy", "X-Frame-Options",
                                                    "X-Content-Type-Options", "Referrer-Policy")}
        assert got["X-Frame-Options"] == "DENY" and got["X-Content-Type-Options"] == "nosniff", path
        assert got["Referrer-Policy"] == "same-origin", path
        assert "frame-ancestors 'none'" in got["Content-Security-Policy"], path
        assert "script-src 'self' 'sha256-" in got["Content-Security-Policy"], path  # no 'unsafe-inline' scripts
        assert expected in (None, got), path
        expected = got

    def attempt(name: str) -> float:
        started = time.perf_counter()
        answer = sign_in(site["base"], name, "nope")
        assert answer.status_code == 401
        return time.perf_counter() - started
    unknown = statistics.median(attempt("nobody-here") for _ in range(4))
    wrong = statistics.median(attempt("ana") for _ in range(4))
    # Without the dummy hash an unknown name answered in a tenth of the time (no PBKDF2 run).
    assert unknown > 0.5 * wrong, (unknown, wrong)


def test_an_analyst_signs_in_reads_a_topic_filters_headlines_and_acknowledges_an_alert(site, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    base = site["base"]
    browser.get(base + "/?range=24h")
    wait_for(browser, "#username").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys("wrong")
    browser.find_element(By.ID, "sign-in").click()
    wait_for(browser, "#login-error", text="Wrong user name or password")
    browser.find_element(By.ID, "username").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys("correct horse")
    browser.find_element(By.ID, "sign-in").click()

    # Overview: every seeded topic, Macro first (a firing alert), heat map drawn.
    wait_for(browser, "#overview-table", text="Macro")
    wait_for(browser, "#heatmap .main-svg")
    texts = settled(lambda: [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#overview-table tbody tr")])
    assert any("Earnings" in t for t in texts) and any("Energy | Oil" in t for t in texts)
    rows = [t for t in texts if t.strip()]  # the header row, then (under the empty filter row) the data
    assert "Macro" in rows[1]
    assert "signed in as ana" in browser.find_element(By.ID, "user").text
    browser.save_screenshot(str(ARTIFACTS / "overview.png"))

    # Topic page through the table's link; the URL keeps the state.
    browser.find_element(By.LINK_TEXT, "Macro").click()
    wait_for(browser, "#topic-title", text="Macro")
    assert "topic=Macro" in browser.current_url and "range=24h" in browser.current_url
    wait_for(browser, "#trend .main-svg")
    wait_for(browser, "#topic-alerts", text="UTC, still firing")
    assert "alerts" in settled(lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#trend .legendtext")])
    wait_for(browser, "#headlines table.headlines tbody tr")
    time.sleep(1.0)  # the first renders settle
    def total() -> int:  # "headlines 1–25 of 197": 25 a page
        return int(browser.find_element(By.ID, "headlines-page").text.rsplit(" of ", 1)[1])
    before = settled(total)
    assert before > 25 and settled(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#headlines tbody tr"))) == 25
    # The XSS headline is shown as text; its javascript: URL is not a link; nothing ran.
    cells = browser.execute_script(
        "return [...document.querySelectorAll('#headlines td')].filter(td => td.textContent.includes('<script>'))"
        ".map(td => [td.textContent, td.querySelectorAll('a').length])")
    assert cells == [[XSS_TITLE, 0]]
    assert browser.execute_script("return window.xssRan === undefined")
    links = browser.execute_script("return [...document.querySelectorAll('#headlines td a')].map(a => a.href)")
    assert links and all(h.startswith("https://news.example/") for h in links)
    browser.save_screenshot(str(ARTIFACTS / "topic.png"))

    # Drag a range on the chart: the headlines narrow to it, the URL keeps it.
    def drag():
        plot = browser.find_element(By.CSS_SELECTOR, "#trend .nsewdrag")
        width = plot.size["width"]
        ActionChains(browser).move_to_element_with_offset(plot, int(width * 0.1), 20).click_and_hold() \
            .move_by_offset(int(width * 0.25), 0).move_by_offset(5, 0).release().perform()
        deadline = time.monotonic() + 10
        while "from=" not in browser.current_url and time.monotonic() < deadline:
            time.sleep(0.2)
        return "from=" in browser.current_url
    # A live redraw that lands in the middle of a drag cancels it (as it would for a person):
    # drag again then.
    assert settled(drag) or settled(drag) or settled(drag), "three drags on the chart picked nothing"
    wait_for(browser, "#headlines-note", text="(selected on the chart)")
    after = settled(total)
    assert 0 < after < before
    # Live refreshes (every 5 s here) keep the pick: the same headlines 7 s later.
    time.sleep(7)
    assert "(selected on the chart)" in settled(lambda: browser.find_element(By.ID, "headlines-note").text)
    assert settled(total) == after
    browser.save_screenshot(str(ARTIFACTS / "topic-selected.png"))
    browser.find_element(By.ID, "clear-pick").click()
    wait_for(browser, "#headlines-note", text="(drag or click on the chart to narrow)")
    assert "from=" not in browser.current_url

    # A watchlist's page, through the overview's link: its trend and its matching headlines.
    browser.get(base + "/?range=24h")
    wait_for(browser, "#overview-table", text="watchlist: US regional banks")
    settled(lambda: browser.find_element(By.LINK_TEXT, "watchlist: US regional banks").click())
    wait_for(browser, "#topic-title", text="watchlist: US regional banks")
    wait_for(browser, "#trend .main-svg")
    wait_for(browser, "#headlines table.headlines tbody tr")
    time.sleep(1.0)  # the first renders settle
    titles = browser.execute_script(  # read in one go: a live refresh may redraw the table between reads
        "return [...document.querySelectorAll('#headlines tbody tr')].map(r => r.textContent)")
    expected = {i.title for i in site["seeded"]["items"] if i.watchlists}
    assert titles and all(any(t in row for t in expected) for row in titles)
    heads = browser.execute_script("return [...document.querySelectorAll('#headlines thead th')].map(h => h.textContent)")
    assert heads == ["published", "source", "sentiment", "score", "headline's own", "read toward", "headline"]
    assert all("SVB" in row for row in titles)  # each row names the term its score reads toward
    browser.save_screenshot(str(ARTIFACTS / "watchlist.png"))

    # Alerts page: evidence, delivery status, acknowledge.
    browser.find_element(By.ID, "nav-alerts").click()
    wait_for(browser, "#alert-list .alert-card.alert-firing", text="negative-turn on Macro")

    def firing_card():  # read afresh: a live refresh may redraw the list between two reads
        card = browser.find_element(By.CSS_SELECTOR, "#alert-list .alert-card.alert-firing")
        return card.text, len(card.find_elements(By.CSS_SELECTOR, "li")), card
    text, evidence, _ = settled(firing_card)
    assert "deliveries: hook: 1 pending" in text and "Fired on:" in text
    assert evidence == 3  # the evidence headlines
    settled(lambda: firing_card()[2].find_element(By.CSS_SELECTOR, "button.ack").click())
    wait_for(browser, "#alert-list", text="acknowledged by ana")
    browser.save_screenshot(str(ARTIFACTS / "alerts.png"))
    with open_store(site["url"]).connect() as conn:
        assert conn.execute(select(alert_acks.c.acked_by)).scalars().all() == ["ana"]

    # Log out: the pages are closed again.
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, "#username")
    browser.get(base + "/alerts")
    wait_for(browser, "#username")


def test_every_view_says_what_it_shows(site, browser):
    """Issue 32's fixes as an analyst meets them: a bad custom range is said, an unknown topic is
    named, an empty range says so and still lists the firing alert, the columns say what they
    are, the rule is drawn on its window, headlines come 25 a page, a card shows the headlines
    that fired it and its deliveries by receiver."""
    from selenium.webdriver.common.by import By

    base = site["base"]
    sign_in_chromium(browser, base, "ana", "correct horse")
    wait_for(browser, "#overview-table")

    browser.get(base + "/?range=custom&start=yesterday&end=now")
    wait_for(browser, "#range-error", text="the start 'yesterday' is not an ISO time")
    browser.get(base + "/?range=custom&start=2020-01-01T00:00&end=2020-01-02T00:00")
    wait_for(browser, "#overview-note", text="No news in this range (2020-01-01 00:00 to 2020-01-02 00:00 UTC)")
    wait_for(browser, "#overview-table", text="Macro")  # its alert is firing: listed whatever the range
    wait_for(browser, "#heatmap", text="No news in this range")
    assert browser.find_element(By.ID, "banner").text == BANNER  # every page says what its news is
    headers = browser.find_element(By.ID, "overview-table").text
    assert all(h in headers for h in ("mean (range)", "weighted mean", "latest complete window", "its headlines",
                                      "window still filling"))
    browser.save_screenshot(str(ARTIFACTS / "overview-empty-range.png"))

    browser.get(base + "/topic?range=24h&topic=Nonsense")
    wait_for(browser, "#unknown-topic", text="holds nothing for 'Nonsense'")
    wait_for(browser, "#trend", text="No such topic or watchlist: Nonsense")

    browser.get(base + "/topic?range=24h&topic=Macro")
    wait_for(browser, "#trend", text="negative-turn: fires mean below -0.30")
    wait_for(browser, "#trend", text="negative-turn: recovers past -0.10")
    assert "judged by negative-turn" in browser.find_element(By.ID, "trend").text
    wait_for(browser, "#headlines-page", text="headlines 1–25 of")
    settled(lambda: browser.find_element(By.ID, "older").click())
    wait_for(browser, "#headlines-page", text="headlines 26–50 of")
    assert "hpage=2" in browser.current_url
    browser.save_screenshot(str(ARTIFACTS / "topic-rules.png"))

    browser.get(base + "/alerts?range=24h")
    wait_for(browser, "#alert-list .alert-card.alert-firing", text="Fired on:")
    card = browser.find_element(By.CSS_SELECTOR, "#alert-list .alert-card.alert-firing").text
    assert "deliveries: hook: 1 pending" in card
    resolved = browser.find_element(By.CSS_SELECTOR, "#alert-list .alert-card.alert-resolved")
    assert resolved.find_elements(By.TAG_NAME, "button") == []
    assert browser.find_element(By.ID, "banner").text == BANNER
    assert re.search(r"value -?\d\.\d{3}, threshold -?\d\.\d{3} · (since|from) \d{4}-\d\d-\d\d \d\d:\d\d UTC", card)


def test_a_backtest_report_opens_offline_verdicts_first_and_charts_the_alerted_keys(browser, tmp_path):
    """report.html with plotly.min.js beside it draws in a browser with no network: the
    expectations' verdicts at the top, a chart for the key an alert fired on, the quiet key in
    a table (charted too with chart_all)."""
    from datetime import timedelta

    from alerts.rules import RuleFile
    from moodwire.spans import parse_windows
    from streams.backtest.expect import Expectation, check
    from streams.backtest.simulate import fold
    from streams.backtest.report import render, write_plotly
    from tests.streams.test_alerting import episode

    rules = RuleFile.model_validate({"rules": [{"name": "negative-turn", "topics": "all", "window": "1h",
                                                "when": {"mean_below": -0.3}, "min_count": 10, "for": "10m"}]}).rules
    items = episode()
    result = fold(items, rules, parse_windows("1h/5m"), timedelta(minutes=10))
    span = [items[0].published_at, items[-1].published_at]
    outcomes = check([Expectation(name="the turn is caught", rule="negative-turn", key="Financials", between=span,
                                  min_alerts=1),
                      Expectation(name="Macro stays quiet", rule="negative-turn", key="Macro", between=span,
                                  max_alerts=0)], result.alerts, sorted(i.published_at for i in items))
    write_plotly(tmp_path)
    for chart_all, charted in ((False, 1), (True, 2)):
        page = tmp_path / f"report-{chart_all}.html"
        page.write_text(render("Back-test", [("news", "episode")], rules, "1h", result.windows, result.alerts,
                               items[-1].published_at, outcomes, chart_all), encoding="utf-8")
        browser.get(page.as_uri())
        wait_for(browser, "section .main-svg")
        charts = browser.execute_script("return document.querySelectorAll('section .js-plotly-plot').length")
        assert charts == charted
    browser.get((tmp_path / "report-False.html").as_uri())
    wait_for(browser, "section .main-svg")
    text = browser.find_element("tag name", "body").text
    assert text.index("Expectations: 2 of 2 passed") < text.index("Rules") < text.index("Charts:")
    assert "the turn is caught" in text and "Quiet keys" in text and "Macro" in text and "Topic: " not in text
    assert "negative-turn fired" in text and "Harborline Bank losses deepen" in text
    assert "mean < -0.3, window 1h" in text  # the rule's threshold is stated
    # one way to write each thing: times with UTC, "threshold", the summed firing time named so
    assert re.search(r"negative-turn fired \d{4}-\d\d-\d\d \d\d:\d\d UTC → ", text)
    assert ", threshold -0.3" in text and " vs " not in text and "lead" not in text
    assert "firing time, summed over keys" in text
    browser.save_screenshot(str(ARTIFACTS / "backtest-report.png"))
