"""The watches API's bodies: a watch as the API shows it (its spec and version, not its vectors)
and the set in force. The request body of `PUT /watches/{name}` is the `WatchSpec` itself."""

from __future__ import annotations

from pydantic import Field

from harclip.watches.spec import WatchSet, WatchSpec
from harclip.wire.base import WireModel


class WatchInfo(WireModel):
    """One watch in force."""

    spec: WatchSpec
    version: int = Field(description="grows with every change of this watch")
    negatives: int = Field(description="negative vectors it competes with (defaults included)")


class WatchesDoc(WireModel):
    """Every watch in force on `harclip.control` (version 0 and none: nothing published yet)."""

    version: int = Field(description="grows with every change of the set")
    embed_dim: int
    watches: list[WatchInfo]


class WatchExample(WireModel):
    """An uploaded example image, kept in the history: name its `frame_id` in a watch's
    `examples`."""

    frame_id: str
    stream_id: str = Field(description="the history's stream of uploaded examples")


def watch_info(ws: WatchSet, name: str) -> WatchInfo | None:
    """The watch `name` of `ws` as the API shows it; None if there is none."""
    for w in ws.watches:
        if w.spec.name == name:
            return WatchInfo(spec=w.spec, version=w.version, negatives=len(w.negatives))
    return None


def watches_doc(ws: WatchSet) -> WatchesDoc:
    infos = [WatchInfo(spec=w.spec, version=w.version, negatives=len(w.negatives))
             for w in ws.watches]  # fmt: skip
    return WatchesDoc(version=ws.version, embed_dim=ws.embed_dim, watches=infos)
