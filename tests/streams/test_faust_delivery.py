"""The consumer's inline delivery (``streams.faustx.transport``): a delivery that has to wait is
finished by ``_resume`` exactly as an asyncio Task would finish it — its result, the errors
of what it waited on, bare yields, and cancellation all reach the delivery coroutine; a batch's
acknowledgement is Faust's, message by message."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.faustx.probe import bookkeeping, enable_acks, seed
from streams.faustx.transport import _resume, install


def _start(coro):
    """Run ``coro`` up to its first wait, as ``Consumer._deliver`` does."""
    try:
        return coro.send(None)
    except StopIteration as done:
        pytest.fail(f"expected the coroutine to wait, it returned {done.value!r}")


def test_a_delivery_that_waits_on_a_future_gets_its_result():
    async def main():
        gate = asyncio.get_running_loop().create_future()
        seen = []

        async def delivery():
            seen.append(await gate)
            await asyncio.sleep(0)  # a bare yield on the way
            seen.append(await asyncio.sleep(0.01, result="slept"))
            return "delivered"

        coro = delivery()
        waiting_on = _start(coro)
        assert waiting_on is gate
        task = asyncio.ensure_future(_resume(coro, waiting_on))
        await asyncio.sleep(0.01)
        assert not task.done() and seen == []
        gate.set_result("first")
        assert await asyncio.wait_for(task, 2) == "delivered"
        assert seen == ["first", "slept"]

    asyncio.run(main())


def test_the_error_of_what_it_waited_on_is_raised_inside_the_delivery():
    async def main():
        gate = asyncio.get_running_loop().create_future()

        async def delivery():
            try:
                await gate
            except KeyError as exc:
                return f"handled {exc}"

        coro = delivery()
        task = asyncio.ensure_future(_resume(coro, _start(coro)))
        gate.set_exception(KeyError("boom"))
        assert await asyncio.wait_for(task, 2) == "handled 'boom'"

        async def failing():
            await asyncio.sleep(0.01)
            raise ValueError("bad record")

        coro = failing()
        with pytest.raises(ValueError, match="bad record"):
            await asyncio.wait_for(_resume(coro, _start(coro)), 2)

    asyncio.run(main())


def test_cancelling_the_rest_cancels_the_delivery_and_releases_what_it_held():
    async def main():
        lock, queue = asyncio.Lock(), asyncio.Queue(maxsize=1)
        await queue.put("full")
        states = []

        async def delivery():  # like Faust's on_message: a lock, then a put on a full stream buffer
            async with lock:
                try:
                    await queue.put("event")
                except asyncio.CancelledError:
                    states.append("cancelled inside")
                    raise

        coro = delivery()
        task = asyncio.ensure_future(_resume(coro, _start(coro)))
        await asyncio.sleep(0.01)
        assert lock.locked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert states == ["cancelled inside"]
        assert not lock.locked()  # the delivery's `async with` ran its exit
        assert queue.qsize() == 1 and queue.get_nowait() == "full"
        await asyncio.wait_for(queue.put("next"), 1)  # no dangling putter left behind

    asyncio.run(main())


def test_acknowledging_a_batch_at_once_is_acknowledging_each_message(tmp_path):
    """``Consumer.ack_many`` (one hold of Faust's ack lock per batch) leaves the consumer's
    commit bookkeeping as ``Message.ack`` per message does: two handlers' references each,
    offsets below the committed one not recorded, a message held back (``InSequence``'s extra
    reference) never acknowledged."""
    async def acknowledge(way: str):
        app = faust.App(f"ack-{way}", broker="kafka://127.0.0.1:9", datadir=str(tmp_path / way))
        install(app)
        await enable_acks(app, app.topic("news.scored"))
        consumer, tp = app.consumer, TP("news.scored", 0)
        messages = [ConsumerMessage("news.scored", 0, offset, 0.0, 0, [], b"k", b"v", None, 1, 1, tp)
                    for offset in range(10)]
        seed(consumer, tp, committed=3, unacked=messages)
        for message in messages:
            message.incref(2)  # two handlers
        messages[7].incref()  # held back
        for handler in ("sink", "aggregate"):
            if way == "batch":
                consumer.ack_many(messages)
            else:
                for message in messages:
                    message.ack(consumer)
        return (*bookkeeping(consumer, tp), [m.acked for m in messages], [m.refcount for m in messages])

    one_by_one = asyncio.run(acknowledge("one-by-one"))
    assert asyncio.run(acknowledge("batch")) == one_by_one
    assert one_by_one == ([3, 4, 5, 6, 8, 9], 6, [0, 1, 2, 7], [o != 7 for o in range(10)],
                          [1 if o == 7 else 0 for o in range(10)])
