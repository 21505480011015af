"""Kafka topic names, defined once, and idempotent topic creation."""

from __future__ import annotations

from dataclasses import dataclass

from moodwire.errors import BrokerError

NEWS_RAW = "news.raw"
NEWS_SCORED = "news.scored"
SENTIMENT_WINDOWS = "sentiment.windows"
ALERTS = "alerts"
DEADLETTER = "news.deadletter"

ALL_TOPICS: tuple[str, ...] = (NEWS_RAW, NEWS_SCORED, SENTIMENT_WINDOWS, ALERTS, DEADLETTER)


@dataclass(frozen=True)
class TopicsReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]


def create_topics(bootstrap: str, partitions: int, replication: int,
                  names: tuple[str, ...] = ALL_TOPICS, timeout_s: float = 15.0) -> TopicsReport:
    """Create the Moodwire topics that do not exist yet; existing ones are left alone."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="moodwire-admin",
                                 request_timeout_ms=int(timeout_s * 1000), bootstrap_timeout_ms=int(timeout_s * 1000))
    except KafkaError:
        raise BrokerError(f"no Kafka broker answers at {bootstrap} (set MOODWIRE_KAFKA_BOOTSTRAP "
                          "or start one with `moodwire broker`)") from None
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
        return TopicsReport(tuple(created), tuple(n for n in names if n in existing))
    except KafkaError as exc:
        raise BrokerError(f"creating topics on {bootstrap} failed: {exc}") from None
    finally:
        admin.close()
