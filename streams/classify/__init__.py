"""Classify: a kafka-python consumer group on ``news.raw`` that scores micro-batches with the
model (``models.serving.engine``) and publishes ``ScoredNews`` to ``news.scored``, each stamped
with its ``news.raw`` partition's event-time progress (``inputs``: invariant I8)."""
