"""Kafka client settings derived from the one settings object.

The embedded broker's defects (docs/data-engineers.md, "The embedded broker") are designed around
here, once: consumers start from the earliest offset, keep short session
timeouts with 1 s heartbeats and short fetch waits.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, RebalanceInProgressError

from moodwire.settings import Settings

log = logging.getLogger("moodwire.kafka")


def producer_config(settings: Settings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "client_id": client_id,
        "acks": "all",
        "retries": 10,
        "linger_ms": 5,
        "max_in_flight_requests_per_connection": 1,
        "request_timeout_ms": 30_000,
        # A record the broker has not taken in 45 s fails (Kafka's default is 2 min): a send to a
        # broker that is gone ends inside Publisher.publish's 60 s wait, as one error, and the
        # producer can then be closed (kafka-python's close waits on every pending record).
        "delivery_timeout_ms": 45_000,
    }


def consumer_config(settings: Settings, group_id: str, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "max_poll_interval_ms": 300_000,
    }


def commit_or_redeliver(consumer: KafkaConsumer, offsets: dict[TopicPartition, int], what: str,
                        metadata: dict[TopicPartition, str] | None = None) -> bool:
    """Commit the next offsets to read after what was processed, each with its ``metadata``
    (classify's input time, ``streams.classify.inputs``); ``True`` when the commit landed.

    A rebalance refuses the commit: ``RebalanceInProgressError`` while this member has not yet
    rejoined (a worker joining the group starts one; the next ``poll`` completes it), and
    ``CommitFailedError`` once the partitions have moved. Either way ``what`` stays uncommitted and
    is read again by whoever owns the partitions after the rebalance: duplicates, never loss."""
    if not offsets:
        return True
    try:
        consumer.commit({tp: OffsetAndMetadata(off, (metadata or {}).get(tp, ""), -1) for tp, off in offsets.items()})
    except (RebalanceInProgressError, CommitFailedError) as exc:
        log.warning("commit refused by a rebalance, %s will be re-delivered: %s", what, exc)
        return False
    return True


def faust_config(settings: Settings, app_id: str, datadir: str | None = None) -> dict[str, Any]:
    """Faust app settings. What the embedded broker needs is here and only here:
    pre-created topics with the configured partitions, replication from settings, short
    session / rebalance timeouts with 1 s heartbeats, earliest offsets. The embedded broker's
    wrong end offsets are corrected in the transport (``streams.faustx.transport``), so Faust's
    recovery consistency check holds with ``rocksdb://`` there too."""
    session_s = settings.kafka_session_timeout_ms / 1000
    return {
        "id": app_id,
        "broker": ";".join(f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")),
        "store": settings.aggregate_store,
        "datadir": datadir or str(settings.home / "faust"),
        "topic_partitions": settings.kafka_partitions,
        "topic_replication_factor": settings.kafka_replication,
        "broker_session_timeout": session_s,
        "broker_rebalance_timeout": session_s,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval_ms / 1000,
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        "recovery_consistency_check": settings.aggregate_recovery_check,
        "table_standby_replicas": 0,
        "producer_acks": -1,
        # whole micro-batches leave as a few producer batches (streams.faustx.state.enqueue_records);
        # aiokafka queues one batch per partition at a time, so 16 KB batches meant waits
        "producer_max_batch_size": 512 * 1024,
        "web_enabled": False,
        "stream_wait_empty": False,
    }
