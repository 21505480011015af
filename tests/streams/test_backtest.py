"""moodwire backtest: the live fold over recorded news, its outputs, expectations and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts.rules import RuleFile
from moodwire.spans import parse_windows
from streams.backtest.expect import Expectation, check
from streams.backtest.simulate import fold, partition_of
from tests.streams.aggregate_support import assert_windows_equal, expected_windows
from tests.streams.test_alerting import episode

ROOT = Path(__file__).resolve().parents[2]

RULES = RuleFile.model_validate({"rules": [{
    "name": "negative-turn", "topics": ["Financials", "Macro"], "window": "1h", "when": {"mean_below": -0.3},
    "min_count": 10, "for": "10m", "recover": -0.1, "keep_firing_for": "10m", "severity": "critical"}]}).rules


def test_partitions_follow_kafka_pythons_default_partitioner():
    from kafka.partitioner.default import DefaultPartitioner

    class Cluster:
        def topics(self):
            return {"news.scored"}

        def partitions_for_topic(self, topic):
            return {0, 1, 2, 3}

        def available_partitions_for_topic(self, topic):
            return {0, 1, 2, 3}

    for topic in ("Macro", "Financials", "Fed | Central Banks", "US regional banks"):
        key = topic.encode()
        assert partition_of(topic, 4) == DefaultPartitioner().partition("news.scored", key, key, None, None, Cluster())


def test_the_fold_gives_exact_windows_and_one_alert_episode():
    items = episode()
    result = fold(items, RULES, parse_windows("5m,1h/5m"), timedelta(minutes=10))
    finals = {(w.topic, w.window, w.start): w for w in result.windows}
    assert_windows_equal(finals, expected_windows(items, "5m,1h/5m"))
    statuses = [(a.topic, a.status) for a in result.alerts]
    assert statuses == [("Financials", "firing"), ("Financials", "resolved")]
    firing = result.alerts[0]
    assert all("Harborline" in e.title for e in firing.evidence)
    assert len({e.id for e in firing.evidence}) == len(firing.evidence)


def test_batch_size_and_partition_count_do_not_change_the_result():
    items = episode()
    spec = parse_windows("5m,1h/5m")
    one = fold(items, RULES, spec, timedelta(minutes=10), partitions=1, batch=10_000)
    many = fold(items, RULES, spec, timedelta(minutes=10), partitions=7, batch=37)
    key = lambda w: (w.topic, w.window, w.start)  # noqa: E731
    assert sorted(w.encode() for w in one.windows) == sorted(w.encode() for w in many.windows)
    assert sorted(a.encode() for a in one.alerts) == sorted(a.encode() for a in many.alerts)
    assert len({key(w) for w in one.windows}) == len(one.windows)  # each final window once


def test_expectations_count_episodes_by_their_start():
    items = episode()
    alerts = fold(items, RULES, parse_windows("1h/5m"), timedelta(minutes=10)).alerts
    start = alerts[0].starts_at

    def expect(**kw):
        return Expectation.model_validate({"rule": "negative-turn", **kw})

    outcomes = check([
        expect(key="Financials", between=[start - timedelta(hours=1), start + timedelta(hours=1)], min_alerts=1),
        expect(between=[start + timedelta(minutes=1), start + timedelta(hours=9)], max_alerts=0),
        expect(key="Macro", between=[start - timedelta(hours=1), start + timedelta(hours=1)], min_alerts=1),
    ], alerts)
    assert [o.passed for o in outcomes] == [True, True, False]
    assert outcomes[2].line().startswith("FAILED: rule negative-turn on Macro starts at least 1")
    # "Stays quiet" over weeks the file holds no news in proves nothing: it fails, saying why.
    times = sorted(i.published_at for i in items)
    before = [times[0] - timedelta(days=20), times[0] - timedelta(days=10)]
    [quiet, caught] = check([expect(between=before, max_alerts=0),
                             expect(key="Financials", between=[start - timedelta(hours=1), start + timedelta(hours=1)],
                                    min_alerts=1)], alerts, times)
    assert not quiet.passed and "the news file has no item in this interval" in quiet.line()
    assert caught.passed
    # by: the first alert in the interval no later than a time
    window = [start - timedelta(hours=1), start + timedelta(hours=1)]
    [late, early] = check([expect(key="Financials", between=window, by=start - timedelta(minutes=1)),
                           expect(key="Financials", between=window, by=start)], alerts, times)
    assert not late.passed and early.passed and ", the first by" in late.line()
    # rule: any counts every rule's episodes (a quiet interval for the whole file)
    [every] = check([Expectation.model_validate({"rule": "any", "between": window, "max_alerts": 0})], alerts, times)
    assert not every.passed and every.found == 1 and "the rules together start at most 0" in every.line()


def test_each_alert_has_its_lead_from_the_first_headline_its_window_holds():
    from streams.backtest.lead import leads
    from streams.classify.worker import keyed_records

    items = episode()  # Financials turns negative at minute 120; one item a minute per topic
    records = [r for _, r in keyed_records(items)]
    alerts = fold(records, RULES, parse_windows("1h/5m"), timedelta(minutes=10)).alerts
    [lead] = leads(alerts, records)
    firing = next(a for a in alerts if a.status == "firing")
    window_items = [i for i in items if i.topic == "Financials"
                    and firing.starts_at - timedelta(hours=1) <= i.published_at <= firing.starts_at]
    first = min(window_items, key=lambda i: i.published_at)
    assert (lead.key, lead.fired_at, lead.first_at) == ("Financials", firing.starts_at, first.published_at)
    assert lead.lead == firing.starts_at - first.published_at and "h after the first headline" in lead.line()


def _news_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["published_at,title,source,url"]
    for i, (at, title) in enumerate(rows):
        lines.append(f'{at},"{title}",wire,https://news.example/{i}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {"MOODWIRE_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": "/usr/bin:/bin", "MOODWIRE_DEVICE": "cpu"}
    return subprocess.run([sys.executable, "-m", "moodwire_cli", "backtest", *args, "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_a_backtest_of_recorded_news_is_byte_identical_twice_and_reuses_its_cache(tmp_path: Path):
    t0 = datetime(2023, 3, 9, 6, tzinfo=timezone.utc)
    rows = []
    for i in range(120):
        at = (t0 + timedelta(minutes=6 * i)).isoformat()
        bad = 40 <= i < 80
        rows.append((at, f"Lender {i} collapses as depositors flee and shares plunge" if bad
                     else f"Company {i} reports steady quarterly revenue in line with forecasts"))
    rows.append(("2023-03-12", "Regulators close the bank and take control of its deposits"))  # a date only
    news = _news_csv(tmp_path / "news.csv", rows)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: any-negative\n    window: 1h\n    when: {mean_below: -0.3}\n"
                     "    min_count: 3\n    for: 10m\n    keep_firing_for: 10m\n", encoding="utf-8")
    out = tmp_path / "out"
    first = _run(str(news), "--rules", str(rules), "--out", str(out), home=tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "121 rows, 121 news items, 0 skipped, 1 with a date and no time of day" in first.stdout
    assert "classified 121 headlines in" in first.stdout
    outputs = {name: (out / name).read_bytes() for name in ("alerts.jsonl", "windows.jsonl")}
    alerts = [json.loads(line) for line in outputs["alerts.jsonl"].splitlines()]
    assert any(a["status"] == "firing" for a in alerts)
    # plotly's script beside the page, once: the page opens without a network and stays small
    assert (out / "plotly.min.js").stat().st_size > 1_000_000 > (out / "report.html").stat().st_size
    second = _run(str(news), "--rules", str(rules), "--out", str(out), home=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "taken from the cache" in second.stdout and "classified" not in second.stdout
    assert {name: (out / name).read_bytes() for name in outputs} == outputs


@pytest.mark.slow
def test_bad_rows_are_named_and_counted_and_a_bad_file_is_one_line(tmp_path: Path):
    news = tmp_path / "news.jsonl"
    news.write_text("\n".join([
        json.dumps({"published_at": "2023-03-09T10:00:00Z", "title": "Bank shares slide"}),
        json.dumps({"title": "No time here"}),
        json.dumps({"published_at": "yesterday-ish", "title": "Odd time"}),
        json.dumps({"published_at": "2023-03-09T11:00:00Z", "title": "   "}),
        "{not json",
    ]) + "\n", encoding="utf-8")
    rules = ROOT / "config" / "rules.feeds.yaml"
    done = _run(str(news), "--rules", str(rules), "--out", str(tmp_path / "o"), home=tmp_path)
    assert done.returncode == 0, done.stderr
    for fragment in ("news.jsonl:2: published_at missing or not a time (None)",
                     "news.jsonl:3: published_at missing or not a time ('yesterday-ish')",
                     "news.jsonl:4: empty title", "news.jsonl:5: not JSON"):
        assert fragment in done.stdout
    assert "5 rows, 1 news items, 4 skipped" in done.stdout
    assert "note: rules watchlist-negative, watchlist-early select watchlists, but no watchlist file is given" \
        in done.stdout
    wrong = tmp_path / "news.xlsx"
    wrong.write_bytes(b"PK\x03\x04")
    failed = _run(str(wrong), "--rules", str(rules), "--out", str(tmp_path / "o"), home=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [f"error: replay file {wrong}: unsupported type '.xlsx'; "
                                                  "use .jsonl or .csv"]


@pytest.mark.slow
def test_the_readmes_backtest_example_passes_as_written(tmp_path: Path):
    """The command the README shows, on the shipped sample, with its expectations: exit 0."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    [command] = re.findall(r"^\.venv/bin/moodwire backtest .*?(?<!\\)$", text.replace("\\\n", " "), re.M | re.S)
    args = shlex.split(command)[2:]
    args[args.index("--out") + 1] = str(tmp_path / "out")
    result = _run(*args, home=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 of 4 expectations passed" in result.stdout


@pytest.mark.slow
def test_on_recorded_news_no_alert_resolves_no_data_while_a_window_still_reads_past_its_threshold(tmp_path: Path):
    """The demo sample with the demo's former watchlist rule (mean below -0.3 over 8 or more
    headlines a day: thin windows are common on a narrow list): every "no data" resolution came
    after a no-data stretch in which no window of that list read past the threshold."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: thin, watchlists: all, window: 24h, when: {mean_below: -0.3}, min_count: 8,\n"
                     "     for: 2h, recover: -0.15, keep_firing_for: 12h, no_data_timeout: 6h}\n")
    out = tmp_path / "out"
    result = _run(str(ROOT / "streams" / "samples" / "svb_2023_demo.csv"), "--rules", str(rules), "--watchlists",
                  str(ROOT / "config" / "watchlists.example.yaml"), "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    windows: dict[str, list[tuple[datetime, int, float]]] = {}
    for line in (out / "windows.jsonl").read_text().splitlines():
        w = json.loads(line)
        if w["window"] == "24h":
            windows.setdefault(w["topic"], []).append((datetime.fromisoformat(w["end"]), w["count"], w["mean_score"]))
    no_data = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    no_data = [a for a in no_data if a["status"] == "resolved" and (a.get("reason") or "").startswith("no data")]
    assert no_data, "the sample no longer thins out under this rule: the test checks nothing"
    for alert in no_data:
        since = datetime.fromisoformat(alert["reason"].split(" since ")[1].split(" ")[0])
        ended = datetime.fromisoformat(alert["ends_at"])
        stretch = [(end, n, mean) for end, n, mean in windows[alert["topic"]] if since <= end <= ended]
        assert stretch and all(n < 8 for _, n, _ in stretch)
        assert not [w for w in stretch if w[2] < -0.3], f"{alert['topic']} resolved 'no data' past the threshold"


def test_the_report_writes_a_count_rule_in_headlines_and_a_delay_not_a_lead():
    from streams.backtest.lead import leads
    from streams.backtest.report import render
    from tests.streams.test_alerting import episode

    rules = RuleFile.model_validate({"rules": [{"name": "early", "topics": "all", "window": "1h",
                                                "when": {"negative_count": {"at_least": 3, "score_below": -0.7}}}]}).rules
    items = episode()
    result = fold(items, rules, parse_windows("1h/5m"), timedelta(minutes=10))
    assert result.alerts, "the episode no longer fires the count rule: the test checks nothing"
    page = render("Back-test", [], rules, "1h", result.windows, result.alerts, items[-1].published_at,
                  leads=leads(result.alerts, items))
    assert "value 3 headlines, threshold 3" in page
    assert "after the first headline</b> in its window" in page and "lead" not in page.replace("leading", "")
