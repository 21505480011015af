"""Classify: a kafka-python consumer group on ``news.raw`` that scores micro-batches with the
model (``models.serving.engine``) and publishes ``ScoredNews`` to ``news.scored``."""
