"""Kafka client settings derived from the one settings object.

The embedded broker's defects (see shared/design/BROKER.md) are designed around
here, once: consumers start from the earliest offset, keep short session
timeouts with 1 s heartbeats and short fetch waits.
"""

from __future__ import annotations

from typing import Any

from moodwire.settings import Settings


def producer_config(settings: Settings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "client_id": client_id,
        "acks": "all",
        "retries": 10,
        "linger_ms": 5,
        "max_in_flight_requests_per_connection": 1,
        "request_timeout_ms": 30_000,
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
