"""The streaming stages, one subpackage each, in the order news flows through them:

- ``streams.ingest``     feeds and replay files → normalised, de-duplicated ``news.raw``
- ``streams.classify``   ``news.raw`` → the model → ``news.scored`` (one copy per topic / watchlist key)
- ``streams.aggregate``  ``news.scored`` → windowed sentiment (``sentiment.windows``), alert
                         evaluation (``alerts``) and the store, in one faust-streaming worker
- ``streams.faustx``     the only place private faust-streaming / aiokafka names are used
- ``streams.backtest``   the same fold and rules over a recorded file, without Kafka

Delivery of alerts to people is ``alerts.notify``; the command line is ``moodwire_cli``.
"""
