"""Nothing heavy runs on the API's event loop, so /health (and every other request) is answered
while images are checked and decoded.

A deterministic check, not a timing one: every heavy step (sniffing, the header walk, base64,
decoding) is wrapped by a spy that records whether it was called on a thread that runs an event
loop. A burst of large images through every path that takes images (multipart, base64, WebSocket
ingest, search by an uploaded image) must make every step run, and none of them on the loop.
(A lone small upload - at most 256 KiB and `HARCLIP_API__INLINE_DECODE_PIXELS` - is checked and
decoded on the loop on purpose, well under a millisecond: tests/unit/api/test_predict_path.py.)
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

import api.limits
import api.predict
import harclip.model.preprocess
from tests.support.api import Serve


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Spies:
    """Calls of each heavy step, and those made on an event loop's thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        self.on_loop: Counter[str] = Counter()
        for module, name in (
            (api.limits, "sniff_format"),
            (api.limits, "check_header"),
            (api.predict, "_b64"),
            (harclip.model.preprocess, "decode_image"),
        ):
            monkeypatch.setattr(module, name, self._wrap(name, getattr(module, name)))

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if _on_a_loop():
                self.on_loop[name] += 1
            return fn(*args, **kwargs)

        return spy


def _large_images() -> list[bytes]:
    """A 12 M pixel JPEG (progressive) and a 4 M pixel PNG with alpha: seconds of decoding."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (190, 250, 4), dtype=np.uint8)
    big = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_NEAREST)
    jpeg = cv2.imencode(".jpg", big[:, :, :3], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    png = cv2.imencode(".png", big[:1500, :2600])[1].tobytes()
    return [jpeg, png]


async def test_heavy_work_never_runs_on_the_event_loop(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    spies = Spies(monkeypatch)
    images = _large_images()
    assert all(len(i) < 4 * 1024 * 1024 for i in images)  # each fits a Kafka message
    async with serve(max_body_bytes=12 * 1024 * 1024) as client:
        await client.info()  # started
        h = client._http
        b64 = base64.b64encode(images[0]).decode()
        work = [
            *(h.post("/predict/image", files=[("files", ("a.jpg", images[0])),
                                              ("files", ("b.png", images[1]))])
              for _ in range(3)),
            *(h.post("/predict", json={"image": b64}) for _ in range(2)),
            h.post("/search/similar", files={"file": ("c.png", images[1])}),
            client.ingest("cam-heavy", images),
            *(h.get("/health") for _ in range(20)),
        ]  # fmt: skip
        results = await asyncio.gather(*work)
        for r in results:
            if not isinstance(r, list):  # the ingest's acks
                assert r.status_code == 200, r.text
    assert set(spies.calls) == {"sniff_format", "check_header", "_b64", "decode_image"}
    assert spies.calls["decode_image"] >= 9 and spies.calls["check_header"] >= 11
    assert not spies.on_loop, f"ran on the event loop: {dict(spies.on_loop)}"
