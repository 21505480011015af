"""The classifier, in two rooms: ``models.serving`` loads a model and scores headlines (the
stages import only it), ``models.training`` fine-tunes, distils, evaluates and exports (the
``moodwire train``/``evaluate``/``export`` commands). Training may import serving, never the
reverse (tests/test_layers.py). Knows nothing of Kafka, Faust or Dash.

Entry points: ``models.training.train.train``, ``models.training.evaluate.evaluate``,
``models.serving.engine.InferenceEngine``, ``models.serving.bundle.open_engine``.
"""
