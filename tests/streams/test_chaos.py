"""The short chaos run (bench/bench_chaos.py runs the long one), at the shipped lateness:
recorded news with repeats, late, future-dated, undecodable and NUL-bearing records through real
classify and aggregate processes that are SIGKILLed mid-stream, with classify stopped while hours
of news (in publish time) arrive; every item ends in its windows, exactly, or in the dead letter,
and only the items late when they entered news.raw are late."""

from __future__ import annotations

import pytest

from bench.chaos import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _chaos(bootstrap, tiny_model, tmp_path) -> None:
    report = run(bootstrap, tmp_path, kills=4, model=tiny_model, n=200, rate=15, seed=3, outage=4.0,
                 say=lambda _: None)
    assert report.kills["classify"] + report.kills["aggregate"] == 4 and report.outage_news >= 40
    assert report.sent["repeats"] > 0 and report.sent["late"] + report.sent["future"] + report.sent["undecodable"] > 0
    assert (report.lost, report.double, report.lost_in_classify, report.wrong_dead, report.uninjected_dead,
            report.unmatched_stamps) == (0, 0, 0, 0, 0, 0), report.line()
    assert report.final_windows > 0 and report.dead.get("classify:malformed", 0) == report.sent["undecodable"]


def test_chaos_embedded(fresh_embedded, tiny_model, tmp_path):
    _chaos(fresh_embedded, tiny_model, tmp_path)


def test_chaos_apache_kafka(fresh_apache_kafka, tiny_model, tmp_path):
    _chaos(fresh_apache_kafka, tiny_model, tmp_path)
