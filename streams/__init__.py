"""Kafka I/O: ingest sources and producer, the classify consumer, the Faust aggregation app, store sinks."""
