"""Kafka topic names, defined once, and idempotent topic creation."""

from __future__ import annotations

import time
from dataclasses import dataclass

from moodwire.errors import BrokerError

NEWS_RAW = "news.raw"
NEWS_SCORED = "news.scored"
SENTIMENT_WINDOWS = "sentiment.windows"
ALERTS = "alerts"
DEADLETTER = "news.deadletter"

ALL_TOPICS: tuple[str, ...] = (NEWS_RAW, NEWS_SCORED, SENTIMENT_WINDOWS, ALERTS, DEADLETTER)


def _admin(bootstrap: str, timeout_s: float):
    import logging

    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    client = logging.getLogger("kafka")
    level = client.level
    client.setLevel(logging.CRITICAL)  # its retry lines while probing: the one line below says it
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="moodwire-admin",
                                request_timeout_ms=int(timeout_s * 1000), bootstrap_timeout_ms=int(timeout_s * 1000))
    except KafkaError:
        raise BrokerError(f"no Kafka broker answers at {bootstrap} within {timeout_s:.0f} s (set "
                          "MOODWIRE_KAFKA_BOOTSTRAP, or start one with `moodwire broker`)") from None
    finally:
        client.setLevel(level)


@dataclass(frozen=True)
class TopicsReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]


def create_topics(bootstrap: str, partitions: int, replication: int,
                  names: tuple[str, ...] = ALL_TOPICS, timeout_s: float = 15.0) -> TopicsReport:
    """Create the Moodwire topics that do not exist yet; existing ones are left alone."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    admin = _admin(bootstrap, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        created = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication)],
                                    timeout_ms=int(timeout_s * 1000))
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        _wait_until_visible(admin, names, partitions, bootstrap, timeout_s)
        return TopicsReport(tuple(created), tuple(n for n in names if n in existing))
    except KafkaError as exc:
        raise BrokerError(f"creating topics on {bootstrap} failed: {exc}") from None
    finally:
        admin.close()


def _wait_until_visible(admin, names: tuple[str, ...], partitions: int, bootstrap: str, timeout_s: float) -> None:
    """Apache Kafka propagates new topics to its metadata cache asynchronously; a client
    that subscribes before then is assigned nothing. Return once every topic is listed."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = set(names) - set(admin.list_topics())
        if not missing:
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {sorted(missing)} were created on {bootstrap} but are still "
                              f"not visible after {timeout_s:.0f} s")
        time.sleep(0.1)


def require_topics(bootstrap: str, names: tuple[str, ...], timeout_s: float = 8.0) -> None:
    """Fail fast, naming what to fix, when the broker does not answer or a topic is missing: 8 s
    for the broker, so a stage started without one says so within 10 s of its start."""
    from kafka.errors import KafkaError

    admin = _admin(bootstrap, timeout_s)
    try:
        missing = sorted(set(names) - set(admin.list_topics()))
    except KafkaError as exc:
        raise BrokerError(f"listing topics on {bootstrap} failed: {exc}") from None
    finally:
        admin.close()
    if missing:
        raise BrokerError(f"topics {', '.join(missing)} do not exist on {bootstrap}; run `moodwire topics create`")
