"""Watchlist files and matching: whole words, phrases across punctuation, case, Unicode, tickers
with and without $, excludes, topic restrictions, and one clear line for a bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alerts.rules import RuleFile
from moodwire.watchlists import Matcher, Watchlist, WatchlistError, fold, load_watchlists
from streams.classify.worker import keyed_records

ROOT = Path(__file__).resolve().parents[2]


def matcher(**lists) -> Matcher:
    return Matcher([Watchlist(name=name, **spec) for name, spec in lists.items()])


BANKS = dict(keywords=["Silicon Valley Bank", "SVB", "bank run"], tickers=["SIVB", "$SBNY"],
             exclude=["World Bank", "food bank"])


@pytest.mark.parametrize("text, hit", [
    ("Silicon Valley Bank collapses", True),
    ("silicon valley bank collapses", True),                 # case
    ("Silicon-Valley  Bank's depositors flee", True),          # punctuation and spacing inside a phrase
    ("SVB's shares halted", True),                            # possessive
    ("(SVB) shares halted", True),
    ("SVBX launches a fund", False),                          # whole words only
    ("A bank-run fear grips lenders", True),
    ("Banks run stress tests", False),
    ("SIVB falls 60% premarket", True),                       # ticker in capitals
    ("sivb falls", False),                                    # a bare ticker must be in capitals
    ("$sivb falls", True),                                    # a cashtag in any case
    ("$SBNY halted", True), ("SBNY halted", True),            # listed with $: the bare symbol too
    ("The World Bank warns on growth", False),                # the exclude masks 'bank' words
    ("World Bank warns of SVB contagion", True),              # ... but not SVB elsewhere
])
def test_keyword_and_ticker_semantics(text, hit):
    assert (matcher(banks=BANKS).match(text) == ["banks"]) is hit


def test_unicode_is_folded_on_both_sides():
    m = matcher(swiss=dict(keywords=["Credit Suisse", "Zürich Insurance"]))
    assert m.match("Crédit Suisse shares slide") == ["swiss"]
    assert m.match("ZURICH INSURANCE raises outlook") == ["swiss"]
    assert m.match("Ｃｒｅｄｉｔ Ｓｕｉｓｓｅ in full-width letters") == ["swiss"]  # NFKD folds compatibility forms
    assert fold("Ａ—b") == " a b "


def test_regex_topics_and_several_lists():
    m = matcher(cs=dict(regex=[r"\bCS\b"], keywords=["Credit Suisse"]),
                oil=dict(keywords=["oil"], exclude=["olive oil"], topics=["Energy | Oil"]),
                banks=BANKS)
    assert m.match("UBS agrees to buy CS; SVB fallout spreads") == ["cs", "banks"]
    assert m.match("Oil jumps 5%", topic="Energy | Oil") == ["oil"]
    assert m.match("Oil jumps 5%", topic="Markets") == []           # restricted to the model's topic
    assert m.match("Olive oil prices soar", topic="Energy | Oil") == []


def test_two_thousand_keywords_build_one_automaton(tmp_path: Path):
    keywords = [f"Company {i} Holdings" for i in range(2000)]
    m = matcher(many=dict(keywords=keywords))
    assert m.match("Company 1234 Holdings misses estimates") == ["many"]
    assert m.match("Company 12345 Holdings misses estimates") == []


@pytest.mark.parametrize("body, message", [
    ("watchlists:\n  - name: banks\n    keyword: [SVB]\n",
     "watchlist 'banks', keyword: unknown key"),
    ("watchlists:\n  - name: banks\n    description: nothing to match\n",
     "watchlist 'banks', give at least one of keywords, tickers or regex"),
    ("watchlists:\n  - name: banks\n    regex: ['(unclosed']\n",
     "watchlist 'banks', regex: '(unclosed' is not a regular expression"),
    ("watchlists:\n  - name: banks\n    regex: ['(?<!World )Bank']\n",
     "watchlist 'banks', regex: '(?<!World )Bank' is not a regular expression RE2 runs (invalid perl operator: (?<!)"),
    ("watchlists:\n  - name: banks\n    regex: ['(SVB) and \\1']\n",
     "has no lookarounds or backreferences"),
    ("watchlists:\n  - name: banks\n    tickers: ['S&P 500']\n",
     "watchlist 'banks', tickers: 'S&P 500' is not a ticker"),
    ("watchlists:\n  - name: a\n    keywords: [x]\n  - name: A\n    keywords: [y]\n",
     "watchlist name 'A' is used twice"),
    ("watchlists:\n  - name: oil\n    keywords: [oil]\n    topics: [Crude]\n",
     "watchlist 'oil': topics: 'Crude' is not a topic of the model"),
    ("- just a list\n", "must hold a mapping"),
])
def test_a_bad_file_names_the_file_the_list_and_the_key(tmp_path: Path, body, message):
    from models.serving.labels import TOPIC_LABELS

    path = tmp_path / "w.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(WatchlistError) as err:
        load_watchlists(path, TOPIC_LABELS)
    assert str(path) in str(err.value) and message in str(err.value)


def test_the_example_file_is_valid_and_the_check_command_is_one_line_on_error(tmp_path: Path):
    from models.serving.labels import TOPIC_LABELS

    lists = load_watchlists(ROOT / "config" / "watchlists.example.yaml", TOPIC_LABELS)
    assert {"US regional banks", "large European banks", "crypto", "oil and energy", "UK sovereign"} == \
        {w.name for w in lists}
    bad = tmp_path / "bad.yaml"
    bad.write_text("watchlists:\n  - name: x\n    keyword: [a]\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "moodwire_cli", "watchlists", "check", str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: watchlist file {bad}: watchlist 'x', keyword: unknown key"]


@pytest.mark.timeout(60)  # on a backtracking engine this pattern takes longer than the universe's age
def test_a_catastrophic_pattern_matches_a_long_title_in_linear_time():
    m = matcher(evil=dict(regex=["(a+)+$"]), fine=dict(regex=[r"\bFirst Republic\b"]))
    assert m.match("a" * 1999 + "!") == []
    assert m.match("a" * 2000) == ["evil"]
    assert m.match("Shares of FIRST REPUBLIC slide " + "a" * 1950 + "!") == ["fine"]


def test_the_check_command_refuses_a_pattern_re2_cannot_run_in_one_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("watchlists:\n  - name: x\n    regex: ['(?=SVB)S']\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "moodwire_cli", "watchlists", "check", str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: watchlist file {bad}: watchlist 'x', regex: '(?=SVB)S' is not a regular "
                           "expression RE2 runs"), line


def test_news_scored_carries_an_item_once_per_key():
    import random
    from datetime import datetime, timezone

    from tests.streams.aggregate_support import make

    item = make("Financials", datetime(2023, 3, 10, tzinfo=timezone.utc), random.Random(1), "x")
    item = item.model_copy(update={"watchlists": ["US regional banks", "crypto"]})
    records = keyed_records([item])
    assert [(k.decode(), r.watchlist) for k, r in records] == [
        ("Financials", None), ("watchlist:US regional banks", "US regional banks"), ("watchlist:crypto", "crypto")]
    assert {r.id for _, r in records} == {item.id}


def test_rules_select_topics_or_watchlists():
    def rule(**kw):
        return RuleFile.model_validate({"rules": [{"name": "r", "window": "1h", "when": {"mean_below": -0.3}, **kw}]}).rules[0]

    plain = rule()
    assert plain.selects("Macro") and not plain.selects("watchlist:crypto")
    lists = rule(watchlists=["crypto"])
    assert lists.selects("watchlist:crypto") and not lists.selects("watchlist:oil") and not lists.selects("Macro")
    both = rule(topics=["Macro"], watchlists={"pattern": "bank"})
    assert both.selects("Macro") and both.selects("watchlist:US regional banks") and not both.selects("Markets")


def test_explain_names_the_terms_that_matched_and_not_the_excluded_ones(tmp_path: Path):
    m = matcher(banks=dict(keywords=["SVB", "bank run"], tickers=["SIVB"], exclude=["SVB Leerink"]),
                pattern=dict(regex=[r"\bFirst Republic\b"]))
    assert m.explain("SVB shares halted; $SIVB down 60% as bank run spreads") == \
        {"banks": ["SVB", "bank run", "$SIVB"]}
    assert m.explain("SVB Leerink upgrades a biotech") == {}  # inside an exclude: no match
    assert m.explain("First Republic shares slide") == {"pattern": [r"/\bFirst Republic\b/"]}
    news = tmp_path / "news.csv"
    news.write_text("published_at,title\n2023-03-10T09:00:00Z,SVB collapses\n2023-03-10T10:00:00Z,"
                    "Depositors flee SVB in a bank run\n", encoding="utf-8")
    lists = tmp_path / "lists.yaml"
    lists.write_text("watchlists:\n  - name: banks\n    keywords: [SVB, bank run]\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "moodwire_cli", "watchlists", "check", str(lists), "--news",
                           str(news)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "  terms: SVB 2, bank run 1" in done.stdout
    assert "Depositors flee SVB in a bank run  [SVB, bank run]" in done.stdout
