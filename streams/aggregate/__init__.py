"""Aggregate: the faust-streaming worker behind ``moodwire aggregate``.

- ``fold``, ``windows``  the pure, exact event-time fold (no Faust)
- ``inputs``             the news.raw partitions upstream and the watermark they give (I8)
- ``sequence``           which offsets a partition may fold next (markers, seeks back)
- ``app``                wiring: the Faust app, topics, tables and subscriptions
- ``pipeline``           one micro-batch: fold, queue the writes, settle the markers
- ``emit``               the throttled emitter of changed windows and the idle-partition heartbeat
- ``store_sink``         idempotent upserts of items and windows into the store
- ``alerting``           the alert-evaluation agent on ``sentiment.windows``
- ``process``            process set-up and the worker's run loop

The delivery protocol these follow is docs/aggregate-worker.md.
"""
