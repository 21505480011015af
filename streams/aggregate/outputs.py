"""The aggregate worker's output topics: window records and dead letters, sent in whole producer
batches (``faustx.state.enqueue_records``). ``enqueue_*`` queues records behind everything
queued before and returns the future of their acknowledgements; ``send_*`` waits for it."""

from __future__ import annotations

import asyncio
from datetime import datetime

from moodwire.records import DeadLetter, TopicWindow
from streams.faustx.state import enqueue_records


class Outputs:
    def __init__(self, app, windows_topic, deadletter_topic, metrics) -> None:
        self.app, self.metrics = app, metrics
        self.windows_topic, self.deadletter_topic = windows_topic, deadletter_topic
        # Windows changed since they were last sent: (topic, window, start) → source partition.
        self._pending: dict[tuple[str, str, datetime], int] = {}
        # Window records are computed and queued under this lock: a window computed by the
        # emitter before a batch must not reach the topic after that batch's fresher final record.
        self.lock = asyncio.Lock()

    def touch(self, windows, partition: int) -> None:
        """``windows`` ((topic, window, start)) changed on ``partition``: to be sent (``take_pending``)."""
        for window in windows:
            self._pending.setdefault(window, partition)

    @property
    def any_pending(self) -> bool:
        return bool(self._pending)

    def take_pending(self) -> dict[tuple[str, str, datetime], int]:
        """The windows changed since the last call, with their partitions (and forgets them)."""
        taken, self._pending = self._pending, {}
        return taken

    async def enqueue(self, topic, records: list[tuple[bytes | None, bytes]]):
        return await enqueue_records(self.app, topic.get_topic_name(), [(None, key, value) for key, value in records])

    async def send(self, topic, records: list[tuple[bytes | None, bytes]]) -> None:
        await (await self.enqueue(topic, records))

    async def enqueue_windows(self, windows: list[TopicWindow]):
        for w in windows:
            self._pending.pop((w.topic, w.window, w.start), None)  # sent now: not again
        return await self.enqueue(self.windows_topic, [(w.topic.encode(), w.encode()) for w in windows])

    async def send_windows(self, windows: list[TopicWindow]) -> None:
        await (await self.enqueue_windows(windows))

    async def enqueue_dead(self, letters: list[DeadLetter]):
        self.metrics.deadlettered.inc(len(letters))
        return await self.enqueue(self.deadletter_topic, [(None, d.encode()) for d in letters])

    async def send_dead(self, letters: list[DeadLetter]) -> None:
        await (await self.enqueue_dead(letters))
