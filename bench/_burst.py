"""The timed burst's producer: one record batch per partition, built by aiokafka's C builder.

The benchmark's producer stands in for the crawlers, which run on machines of their own: the
CPU it spends is not the pipeline's, yet on this box it comes out of the classifier's cores.
kafka-python's producer encodes every record in Python: 0.3 CPU-s for a 2,000-document burst,
0.15 per 1000 documents, as much as the broker and ClickHouse together. Built as one batch per
partition (partitioned beforehand by key with murmur2, Kafka's default partitioner, so the
partitions fill as a crawler's sends would fill them) the same burst costs ~0.01 CPU-s.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

MAX_BATCH_BYTES = 512 * 1024


def burst_records(docs: Sequence[Any], partitions: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition) per document, made before the clock starts: a crawler
    serialises and partitions on its own machine. The partition is aiokafka's default
    partitioner's choice (murmur2 of the key, as kafka-python's and the Java client's)."""
    from aiokafka.partitioner import DefaultPartitioner

    choose, every = DefaultPartitioner(), list(range(partitions))
    return [(key, d.to_json(), choose(key, every, every))
            for d in docs for key in (d.id.encode(),)]


class BurstProducer:
    """An aiokafka producer on its own event-loop thread, for a synchronous benchmark."""

    def __init__(self, bootstrap: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-burst",
                                       daemon=True)
        self.thread.start()
        self.producer: Any = self._call(self._start(bootstrap))

    def _call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, bootstrap: str) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    max_batch_size=MAX_BATCH_BYTES)
        await producer.start()
        return producer

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes, int]]) -> None:
        """Send (key, value, partition) records as batches; return once all are acked."""
        self._call(self._send(topic, records))

    async def _send(self, topic: str, records: Sequence[tuple[bytes, bytes, int]]) -> None:
        batches: dict[int, Any] = {}
        sent: list[Any] = []
        for key, value, partition in records:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it
                batch.close()
                sent.append(await self.producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = self.producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            batch.close()
            sent.append(await self.producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)

    def close(self) -> None:
        try:
            self._call(self.producer.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def trim_topics(bootstrap: str, prefix: str) -> int:
    """Delete the records already in the run's topics (Kafka DeleteRecords); returns how many.

    noida-db's CPU per record grows with what its log holds: six rounds of 2,000 records in and
    out cost it 0.12, 0.39, 0.56, 0.65, 1.06, 0.99 CPU-s, and 0.11-0.22 each with the log
    trimmed between rounds (2026-12-04). Repeated bursts into one log would each pay for the
    ones before (0.08 -> 0.57 CPU-s per 1000 documents over four bursts), which a real broker's
    append-only segments do not. Called only once every record was consumed and stored."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(t, p) for t in sorted(consumer.topics()) if t.startswith(prefix)
                 for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = {tp: int(end) for tp, end in consumer.end_offsets(parts).items() if end}
        if ends:
            admin.delete_records(ends)
        return sum(ends.values())
    finally:
        admin.close()
        consumer.close()
