"""``moodwire watchlists check FILE [--news NEWS_FILE]``: validate a watchlist file and show, per
list, how many headlines of a news file it matches and a sample of them — how a team tunes a
list before deploying it. Matching here ignores a list's ``topics`` restriction unless
``--model`` classification is asked for (``--with-topics``), since that needs the model."""

from __future__ import annotations

import random
from collections import Counter

import click


@click.group()
def watchlists() -> None:
    """Watchlists: check a file before deploying it."""


@watchlists.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--news", "news_file", type=click.Path(dir_okay=False), default=None,
              help="Recorded news (CSV or JSONL with title and published_at) to match against.")
@click.option("--sample", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Matching headlines shown per watchlist.")
@click.option("--seed", type=int, default=1, show_default=True, help="Which headlines the sample shows.")
def check(file, news_file, sample, seed) -> None:
    """Validate FILE; with --news, count and show each list's matching headlines."""
    from models.serving.labels import TOPIC_LABELS
    from moodwire.watchlists import Matcher, load_watchlists

    lists = load_watchlists(file, TOPIC_LABELS)
    click.echo(f"{file}: {len(lists)} watchlists, valid")
    for w in lists:
        restricted = f", topics {', '.join(w.topics)}" if w.topics else ""
        click.echo(f"  {w.name}: {len(w.keywords)} keywords, {len(w.tickers)} tickers, {len(w.regex)} regex, "
                   f"{len(w.exclude)} excludes{restricted}")
    if not news_file:
        return
    from moodwire.errors import BacktestError, ReplayError
    from streams.ingest.replay import read_recorded

    try:
        plan = read_recorded(news_file)
    except ReplayError as exc:
        raise BacktestError(str(exc)) from None
    matcher = Matcher(lists)
    matched: dict[str, list] = {w.name: [] for w in lists}
    counts: dict[str, Counter] = {w.name: Counter() for w in lists}
    total = 0
    for item in plan.items:
        hits = matcher.explain(item.title)  # topics restrictions need the model: not applied here
        total += bool(hits)
        for name, terms in hits.items():
            matched[name].append((item, terms))
            counts[name].update(terms)
    click.echo(f"{news_file}: {len(plan.items)} headlines ({len(plan.skipped)} rows skipped), "
               f"{total} match at least one list (topics restrictions not applied)")
    rng = random.Random(seed)
    for w in lists:
        items = matched[w.name]
        click.echo(f"\n{w.name}: {len(items)} headlines ({100 * len(items) / max(1, len(plan.items)):.1f} %)")
        if items:  # which terms bring the headlines in: the first thing to tune
            click.echo("  terms: " + ", ".join(f"{term} {n}" for term, n in counts[w.name].most_common()))
        for item, terms in sorted(rng.sample(items, min(sample, len(items))), key=lambda m: m[0].published_at):
            click.echo(f"  {item.published_at:%Y-%m-%d %H:%M}  {item.title[:140]}  [{', '.join(terms)}]")
