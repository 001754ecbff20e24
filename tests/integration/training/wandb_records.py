"""Read the records of an offline W&B run file (`run-ID.wandb`): a header (":W&B", magic
0xBEE1, version 0) then LevelDB-log blocks of 32 KiB whose records (4-byte CRC, 2-byte length,
1-byte type: full / first / middle / last) carry `wandb_internal_pb2.Record` protobufs. wandb
0.31 writes and syncs this file from its Go core and ships no Python reader for it."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 32768
_HEADER = 7  # checksum (4) + length (2) + type (1); the file header is 7 bytes too
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """The `Record` messages of an offline run file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    if data[:4] != b":W&B" or struct.unpack("<H", data[4:6])[0] != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file")
    pos, parts = _HEADER, b""
    while pos + _HEADER <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _HEADER:  # block trailer: zero padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        payload = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 0 and length == 0:  # padding at the end
            break
        if kind in (_FULL, _FIRST):
            parts = payload
        else:
            parts += payload
        if kind in (_FULL, _LAST):
            rec = pb.Record()
            rec.ParseFromString(parts)
            yield rec
