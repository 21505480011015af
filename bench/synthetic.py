"""Synthetic scored news for the stream benchmarks: random probabilities, one of 20 topics."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from moodwire.records import ScoredNews, item_id

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
TOPICS = ["Analyst Update", "Fed | Central Banks", "Company | Product News", "Treasuries | Corporate Debt",
          "Dividend", "Earnings", "Energy | Oil", "Financials", "Currencies", "General News | Opinion",
          "Gold | Metals | Materials", "IPO", "Legal | Regulation", "M&A | Investments", "Macro", "Markets",
          "Politics", "Personnel Change", "Stock Commentary", "Stock Movement"]


def scored(topic: str, at: datetime, rng: random.Random, tag: str) -> ScoredNews:
    """One item of ``topic`` published at ``at`` (whole milliseconds, as on the wire)."""
    weights = [rng.random() ** 2 for _ in range(3)]
    neg, neu, pos = (w / sum(weights) for w in weights)
    label = max(zip((neg, neu, pos), ("negative", "neutral", "positive")))[1]
    title = f"{topic} headline {tag}"
    at = at.replace(microsecond=(at.microsecond // 1000) * 1000)
    return ScoredNews(id=item_id(None, "bench", title), source="bench", title=title, published_at=at,
                      fetched_at=at, topic=topic, topic_confidence=0.9, sentiment=label,
                      probs={"negative": neg, "neutral": neu, "positive": pos}, score=pos - neg,
                      model="bench@1", classified_at=at)
