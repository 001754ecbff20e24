"""Thumbnails of frames the UI has seen, by frame_id: history keeps embeddings, not images, so a
search hit has a picture only when this process saw its frame (live tiles, the webcam page).
A small bounded store shared by every session of the process."""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np
import streamlit as st

THUMB_PX = 240  # longest side of a stored thumbnail, pixels
_MAX_THUMBS = 2000  # about 10 KB each


class ThumbStore:
    """frame_id -> small JPEG, least recently stored dropped first; thread-safe."""

    def __init__(self, capacity: int = _MAX_THUMBS) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def put(self, frame_id: str, jpeg: bytes) -> None:
        thumb = thumbnail(jpeg)
        if thumb is None:
            return
        with self._lock:
            self._items[frame_id] = thumb
            self._items.move_to_end(frame_id)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, frame_id: str) -> bytes | None:
        with self._lock:
            return self._items.get(frame_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def thumbnail(data: bytes, px: int = THUMB_PX) -> bytes | None:
    """`data` (an encoded image) as a JPEG at most `px` on its longest side; None if it does not
    decode."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    scale = px / max(h, w)
    if scale < 1:
        img = cv2.resize(
            img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else None


@st.cache_resource(show_spinner=False)
def store() -> ThumbStore:
    """The process's one store."""
    return ThumbStore()
