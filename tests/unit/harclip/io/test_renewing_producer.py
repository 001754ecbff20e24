"""RenewingProducer: a delivery that fails with an error breaking the idempotent producer's
sequence (a broker restart) gets the next frame a new producer; other errors do not."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from harclip.io.kafka import RenewingProducer
from harclip.messages import Frame


class FakeProducer:
    """Answers each send with a future that fails with the next of `errors` (None: succeeds)."""

    def __init__(self, errors: list[BaseException | None]) -> None:
        self.errors = errors
        self.sent: list[str] = []
        self.stopped = False

    async def send(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[object]:
        self.sent.append(kw["key"].decode())
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        error = self.errors.pop(0) if self.errors else None
        fut.set_exception(error) if error else fut.set_result("ok")
        return fut

    async def stop(self) -> None:
        self.stopped = True


def frame(stream_id: str, seq: int) -> Frame:
    return Frame(f"f-{seq}", stream_id, seq, 1_764_000_000_000 + seq, b"\xff\xd8jpeg")


async def _deliver(p: RenewingProducer, f: Frame) -> BaseException | None:
    fut = await p.send_frame("t", f)
    try:
        await fut
    except Exception as e:
        return e
    return None


def test_a_broken_sequence_gets_a_new_producer_before_the_next_frame() -> None:
    async def run() -> None:
        first = FakeProducer([None, OutOfOrderSequenceNumber()])
        second = FakeProducer([])

        async def make() -> Any:
            return second

        p = RenewingProducer(first, make)  # type: ignore[arg-type]
        assert await _deliver(p, frame("cam", 0)) is None
        assert isinstance(await _deliver(p, frame("cam", 1)), OutOfOrderSequenceNumber)
        assert await _deliver(p, frame("cam", 2)) is None  # through the new producer
        assert (first.sent, second.sent, first.stopped, p.renewed) == (
            ["cam", "cam"], ["cam"], True, 1
        )  # fmt: skip

    asyncio.run(run())


def test_other_errors_keep_the_producer() -> None:
    async def run() -> None:
        only = FakeProducer([KafkaTimeoutError()])

        async def make() -> Any:
            raise AssertionError("must not renew")

        p = RenewingProducer(only, make)  # type: ignore[arg-type]
        assert isinstance(await _deliver(p, frame("cam", 0)), KafkaTimeoutError)
        assert await _deliver(p, frame("cam", 1)) is None
        assert (len(only.sent), p.renewed) == (2, 0)

    asyncio.run(run())
