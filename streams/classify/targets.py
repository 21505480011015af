"""Targeted sentiment: what a headline says about each watchlist it matched.

The terms of a list that a headline matched (its keywords as the file spells them, tickers,
and the text a regex matched) are each read by the model's entity head as the pair
"headline [SEP] term" (``models.serving.batching.encode_pairs``). A list matched by several
terms gets the mean of their probability rows (terms that differ only by case or a leading
``$`` are read once): its score is p₊ − p₋ of that mean, its label the mean's most probable
class. Only matched headlines are read again; the pairs of a batch go through the engine in
one call. A model without the entity head reads nothing here: every watchlist copy then carries
the headline's own reading, as before targeted sentiment.
"""

from __future__ import annotations

from collections.abc import Sequence

from moodwire.records import TargetReading


def surface_terms(matcher, title: str, topic: str | None) -> dict[str, list[str]]:
    """Per matched watchlist (file order), the distinct terms of it the title matched."""
    out: dict[str, list[str]] = {}
    for name, terms in matcher.explain(title, topic, surface=True).items():
        seen, kept = set(), []
        for term in terms:
            key = term.lstrip("$").casefold()
            if key and key not in seen:
                seen.add(key)
                kept.append(term)
        out[name] = kept or list(terms)
    return out


def read_targets(engine, matcher, titles: Sequence[str], topics: Sequence[str]) -> list[dict[str, TargetReading]]:
    """Each title's targeted readings, one per watchlist it matches under its topic."""
    if matcher is None or not getattr(engine, "reads_targets", False):
        return [{} for _ in titles]
    wanted = [surface_terms(matcher, title, topic) for title, topic in zip(titles, topics)]
    pairs = list(dict.fromkeys((title, term) for title, lists in zip(titles, wanted)
                               for terms in lists.values() for term in terms))
    if not pairs:
        return [{} for _ in titles]
    probs = engine.read_targets([t for t, _ in pairs], [e for _, e in pairs])
    row = {pair: probs[i] for i, pair in enumerate(pairs)}
    labels = list(engine.spec.sentiment_labels)
    neg, pos = labels.index("negative"), labels.index("positive")
    out = []
    for title, lists in zip(titles, wanted):
        readings = {}
        for name, terms in lists.items():
            mean = sum(row[(title, term)] for term in terms) / len(terms)
            values = [float(v) for v in mean]
            total = sum(values)
            values = [v / total for v in values]  # the mean of rows that each sum to 1, to float precision
            readings[name] = TargetReading(sentiment=labels[max(range(len(values)), key=values.__getitem__)],
                                           probs=dict(zip(labels, values)),
                                           score=max(-1.0, min(1.0, values[pos] - values[neg])), terms=terms)
        out.append(readings)
    return out
