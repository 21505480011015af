"""Reference workers for bench_aggregate.py (not part of Moodwire), same Faust settings:

- ``naive``: the naive Faust way — every item updates three windowed tables (tumbling 5 min,
  hopping 1 h / 5 min, hopping 24 h / 1 h) one by one, windowed by the record timestamp
  (Faust's default; the cost per update is the same);
- ``noop``: a ``take_events`` agent that decodes each record and does nothing else — the
  ceiling of a Faust worker on this machine and broker;
- ``noop-moodwire``: the same work on Moodwire's consumer (``streams.faustx.transport``: the
  records reach a handler a fetched batch at a time, as ``moodwire aggregate``'s agents get them)
  and monitor (``streams.faustx.monitor``) and garbage-collector thresholds
  (``moodwire.runtime.tune_gc``) — the ceiling of ``moodwire aggregate``.

    python bench/naive_windows_app.py naive|noop|noop-moodwire BOOTSTRAP DATADIR METRICS_PORT
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faust  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, start_http_server  # noqa: E402

from moodwire.kafka import faust_config  # noqa: E402
from moodwire.records import ScoredNews, decode  # noqa: E402
from moodwire.settings import load_settings  # noqa: E402
from moodwire.topics import NEWS_SCORED  # noqa: E402
from moodwire.runtime import tune_gc  # noqa: E402
from streams.faustx.batches import subscribe  # noqa: E402
from streams.faustx.monitor import LeanMonitor  # noqa: E402
from streams.faustx.transport import install as install_transport  # noqa: E402


def main(mode: str, bootstrap: str, datadir: str, port: int) -> None:
    settings = load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAP": bootstrap})
    registry = CollectorRegistry()
    items = Counter("moodwire_aggregate_items", "items", registry=registry)
    start_http_server(port, addr="127.0.0.1", registry=registry)
    config = faust_config(settings, "naive-windows", datadir)
    if mode == "noop-moodwire":
        config["Monitor"] = LeanMonitor  # as moodwire aggregate
    app = faust.App(**config)
    if mode == "noop-moodwire":
        install_transport(app)
    scored = app.topic(NEWS_SCORED, partitions=settings.kafka_partitions, key_serializer="raw", value_serializer="raw")
    tables = [
        app.Table("w5m", default=int, partitions=settings.kafka_partitions).tumbling(timedelta(minutes=5), expires=timedelta(days=2)),
        app.Table("w1h", default=int, partitions=settings.kafka_partitions).hopping(timedelta(hours=1), timedelta(minutes=5), expires=timedelta(days=2)),
        app.Table("w24h", default=int, partitions=settings.kafka_partitions).hopping(timedelta(hours=24), timedelta(hours=1), expires=timedelta(days=2)),
    ]

    async def noop(stream):
        async for events in stream.take_events(1000, within=0.2):
            for event in events:
                decode(ScoredNews, event.value)
            items.inc(len(events))

    async def naive(stream):
        async for value in stream:
            item = decode(ScoredNews, value)
            for table in tables:
                table[item.topic] += 1  # one windowed update per item and table
            items.inc()

    async def noop_batch(messages):
        for message in messages:
            decode(ScoredNews, message.value)
        items.inc(len(messages))
        app.consumer.ack_many(messages)

    if mode == "noop-moodwire":
        subscribe(app, scored, mode, noop_batch)
    else:
        app.agent(scored, name=mode)({"naive": naive, "noop": noop}[mode])
    Path(datadir).mkdir(parents=True, exist_ok=True)
    if mode == "noop-moodwire":
        tune_gc()  # as moodwire aggregate
    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
