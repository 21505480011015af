"""End offsets that table recovery can trust, on each real broker (the embedded one
under-reports ListOffsets "latest": the start of the last record batch + 1)."""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streams.faustx.transport import verified_ends

pytestmark = pytest.mark.integration


def test_end_offsets_are_the_true_ends_after_a_multi_record_batch(kafka, unique):
    topic = f"ends-{unique}"
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=200)
    for i in range(7):  # one batch of 7 records
        producer.send(topic, value=b"%d" % i, partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka)
    listed = {TP(tp.topic, tp.partition): end for tp, end in
              consumer.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)]).items()}
    consumer.close()
    assert listed[TP(topic, 1)] == 0
    ends = asyncio.run(verified_ends(kafka, listed))
    assert ends == {TP(topic, 0): 7, TP(topic, 1): 0}, listed  # listed says 1 for partition 0 on the embedded broker
