"""What a valid stream id (a camera's id, an upload's job id) is: the one rule that the producers,
the worker, the API and the client all apply.

A stream id is 1-128 printable characters (letters, digits, punctuation and the plain space; no
control characters, tabs, newlines or other separators) without a '/'. Anything else may be
in it: `lobby #2`, `..`, `a%2Fb` and `cam:1` are valid ids, and the client percent-encodes them
where they go into a URL path.

One id is reserved: `*` is the stream of events about the whole deployment (an adapter's
promotion, `harclip.messages.DEPLOYMENT_STREAM`), so no source may send frames under it (the
producers, the ingest WebSocket and the worker refuse it); reading it (`/streams/*/events`) is
allowed.
"""

from __future__ import annotations

from harclip.errors import MessageError

MAX_STREAM_ID_LEN = 128
STREAM_ID_RULE = f"1-{MAX_STREAM_ID_LEN} printable characters without '/'"
RESERVED_STREAM_ID = "*"  # the whole deployment's events; harclip.messages.DEPLOYMENT_STREAM


def stream_id_problem(value: str) -> str | None:
    """Why `value` is not a valid stream id, or None when it is one."""
    if not value:
        return "is empty"
    if len(value) > MAX_STREAM_ID_LEN:
        return f"is {len(value)} characters long"
    if "/" in value:
        return "contains '/'"
    if not value.isprintable():
        return "contains a control, tab, newline or other non-printable character"
    return None


def check_stream_id(value: str, what: str = "stream id") -> str:
    """`value` if it is a valid stream id; `MessageError` saying why not otherwise."""
    problem = stream_id_problem(value)
    if problem is not None:
        raise MessageError(f"{what} must be {STREAM_ID_RULE}: {value[:140]!r} {problem}")
    return value


def source_stream_id_problem(value: str) -> str | None:
    """Why frames may not be sent under `value` (an invalid or the reserved id), or None."""
    if value == RESERVED_STREAM_ID:
        return "is reserved for events about the whole deployment"
    return stream_id_problem(value)


def check_source_stream_id(value: str, what: str = "stream id") -> str:
    """`value` if frames may be sent under it; `MessageError` saying why not otherwise."""
    problem = source_stream_id_problem(value)
    if problem is not None:
        raise MessageError(f"{what} must be {STREAM_ID_RULE}, not '*': {value[:140]!r} {problem}")
    return value
