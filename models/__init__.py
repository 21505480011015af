"""The classifier: data, the multi-task network, fine-tuning, evaluation, artefacts, inference.

Knows nothing of Kafka, Faust or Dash. Public entry points:
``models.train.train``, ``models.evaluate.evaluate``, ``models.engine.InferenceEngine``.
"""
