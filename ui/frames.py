"""Thumbnails of frames the UI has seen, by frame_id: history keeps embeddings, not images, so a
search hit has a picture only when this process saw its frame (live tiles, the webcam page).
A small bounded store shared by every session of the process.

A frame may be large (an 8000×5000 JPEG is under every limit): each picture is built once per
frame_id, not per refresh, from a JPEG decoded at a reduced scale (libjpeg decodes 1/2, 1/4 or
1/8 of the size directly), and the pages show those small JPEGs, never the frame itself."""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np
import streamlit as st

from harclip.errors import DecodeError
from harclip.model.imageio import check_header

THUMB_PX = 240  # longest side of a stored thumbnail, pixels
VIEW_PX = 960  # longest side of a frame shown on a page, pixels
_MAX_THUMBS = 2000  # about 10 KB each
_MAX_VIEWS = 64  # about 100 KB each: the frames on screen now
_MAX_PIXELS = 40_000_000  # the engines' decompression-bomb limit
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2))  # fmt: skip


class ThumbStore:
    """frame_id -> small JPEG, least recently stored dropped first; thread-safe."""

    def __init__(self, capacity: int = _MAX_THUMBS, views: int = _MAX_VIEWS) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._views: OrderedDict[str, bytes | None] = OrderedDict()
        self._capacity, self._view_capacity = capacity, views
        self._lock = threading.Lock()

    def put(self, frame_id: str, jpeg: bytes) -> None:
        """Keep a thumbnail of `jpeg` under `frame_id`; built once (a frame seen again on the
        next refresh costs a lookup)."""
        with self._lock:
            if frame_id in self._items:
                return
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

    def view(self, frame_id: str, jpeg: bytes) -> bytes | None:
        """`jpeg` at most `VIEW_PX` on its longest side, for a page to show; built once per
        frame_id. None when it does not decode."""
        with self._lock:
            if frame_id in self._views:
                self._views.move_to_end(frame_id)
                return self._views[frame_id]
        small = thumbnail(jpeg, VIEW_PX)
        with self._lock:
            self._views[frame_id] = small
            while len(self._views) > self._view_capacity:
                self._views.popitem(last=False)
        return small

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def thumbnail(data: bytes, px: int = THUMB_PX) -> bytes | None:
    """`data` (an encoded image) as a JPEG at most `px` on its longest side; None if it does not
    decode (or is over the engines' pixel limit). Decoded at the smallest reduced scale that
    still has `px` pixels on its longest side."""
    try:
        header = check_header(data, max_pixels=_MAX_PIXELS)
    except DecodeError:
        return None
    flag = next(
        (f for r, f in _REDUCED if max(header.width, header.height) // r >= px), cv2.IMREAD_COLOR
    )
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
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
