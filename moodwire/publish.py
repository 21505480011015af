"""Publishing records to Kafka with kafka-python, waiting for every acknowledgement."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from moodwire.errors import BrokerError
from moodwire.kafka import producer_config
from moodwire.records import Record
from moodwire.settings import Settings


log = logging.getLogger("moodwire.publish")


class Publisher:
    """Sends (key, record) pairs and returns only once the broker acknowledged all of them."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.bootstrap = settings.kafka_bootstrap
        try:
            self.producer = KafkaProducer(**producer_config(settings, client_id))
        except KafkaError as exc:
            raise BrokerError(f"cannot connect a producer to Kafka at {self.bootstrap}: {exc} "
                              "(check MOODWIRE_KAFKA_BOOTSTRAP)") from None

    def publish(self, topic: str, records: Sequence[tuple[bytes | None, Record]], timeout_s: float = 60.0) -> None:
        try:  # sending (metadata), flushing and each acknowledgement can all fail on a broker that is gone
            futures = [self.producer.send(topic, key=key, value=record.encode()) for key, record in records]
            self.producer.flush(timeout=timeout_s)
            for future in futures:
                future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise BrokerError(f"publishing {len(records)} records to {topic} on {self.bootstrap} failed: {exc}") from None

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        except KafkaError as exc:  # records still pending: publish has already failed for them
            log.warning("closing the producer to %s: %s", self.bootstrap, exc)
