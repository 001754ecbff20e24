"""The UI's one way to the API: one `harclip.client.Client` per (URL, key), and `call`, which
turns every client error into an `st.error` message (never a traceback).

The key comes from `HARCLIP_UI__API_KEY`, or from the sidebar field for this browser session
(kept in session state, never shown back). The events app's data (`events`, `stream_action`,
`stream_stats`, `rules`) may not exist (the app does not run) or an older API may lack the route:
`optional` tells those apart from failures, so a page says "events app not running" instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import streamlit as st

from harclip.appsettings import UiSettings
from harclip.client import ApiError, Client, ConnectionFailed, NotFound
from harclip.config import load_settings
from harclip.errors import HarclipError
from ui.text import md

T = TypeVar("T")
_KEY_STATE = "harclip_api_key"  # the sidebar key of this session (not a widget key)


@st.cache_resource(show_spinner=False)
def settings() -> UiSettings:
    """The UI's settings, read once per process."""
    return load_settings().ui


def api_key() -> str | None:
    """The sidebar key of this session, else `HARCLIP_UI__API_KEY`."""
    key = st.session_state.get(_KEY_STATE)
    if isinstance(key, str) and key:
        return key
    configured = settings().api_key
    return configured.get_secret_value() if configured is not None else None


def set_session_key(key: str | None) -> None:
    st.session_state[_KEY_STATE] = key or None


def key_source() -> str:
    """Where the key in use comes from, for the Settings page (never the key itself)."""
    if st.session_state.get(_KEY_STATE):
        return "this browser session (sidebar)"
    return "HARCLIP_UI__API_KEY" if settings().api_key is not None else "none"


def _close(c: Client) -> None:
    c.close()


@st.cache_resource(show_spinner=False, max_entries=16, on_release=_close)
def _client(url: str, key: str | None, timeout_s: float) -> Client:
    return Client(url, key, timeout_s=timeout_s)


def client() -> Client:
    s = settings()
    return _client(s.api_url, api_key(), s.timeout_s)


def describe(e: Exception) -> str:
    """A one-line message for a person, as Markdown: what the error quotes (a stream id, a
    label, the API's words) is escaped, so it shows as text."""
    if isinstance(e, ApiError):
        code = e.code if re.fullmatch(r"[a-z0-9_]+", e.code) else md(e.code)
        return f"{md(e.message)} ({e.status} {code})"
    if isinstance(e, ConnectionFailed):
        return f"the API at {md(settings().api_url)} cannot be reached; {_START_HINT}"
    return md(str(e) or type(e).__name__)


_START_HINT = "start it with `make demo`, or `python -m api --bundle BUNDLE`"


def call(fn: Callable[..., T], *args: Any, what: str = "", **kwargs: Any) -> T | None:
    """`fn(*args, **kwargs)`; on a client error an `st.error` naming `what` (Markdown) and
    None."""
    try:
        return fn(*args, **kwargs)
    except (HarclipError, ValueError) as e:
        st.error(f"{what}: {describe(e)}" if what else describe(e))
        return None


@dataclass(frozen=True, slots=True)
class Optional(Generic[T]):
    """The answer of an endpoint whose data may not exist: `value`, or why there is none."""

    value: T | None = None
    missing: bool = False  # the API has no such route (an API older than the events app)
    error: str | None = None  # any other failure, for a person


def optional(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Optional[T]:
    """`fn(*args, **kwargs)` (a client method of the events app's data): a 404 means nothing
    there (yet), other failures are kept for the page to show."""
    try:
        return Optional(value=fn(*args, **kwargs))
    except NotFound as e:
        # A route the API lacks answers FastAPI's plain 404 ("Not Found"), which the client
        # reads as code http_error; an absent resource is the API's own `not_found`.
        return Optional(missing=e.code != "not_found")
    except (HarclipError, ValueError) as e:
        return Optional(error=describe(e))


EVENTS_MISSING = (
    "No events here: this API has no events endpoints (it is older than the events app)."
)
EVENTS_NONE = (
    "The events app has not reported on this yet (`python -m stream`; `make demo` runs it)."
)


@dataclass(frozen=True, slots=True)
class ApiStatus:
    """What the API says about itself at the start of a page run."""

    ok: bool
    message: str = ""  # why not, for a person
    engine: str = ""
    model: str = ""
    head_version: int = 0
    labels: tuple[str, ...] = ()
    auth: bool = False


@st.cache_data(ttl=2.0, show_spinner=False)
def _status(url: str, key: str | None, timeout_s: float) -> ApiStatus:
    try:
        info = _client(url, key, timeout_s).info()
    except (HarclipError, ValueError) as e:
        return ApiStatus(ok=False, message=describe(e))
    return ApiStatus(
        ok=True,
        engine=info.engine,
        model=f"{info.model.name} {info.model.version}",
        head_version=info.model.head_version,
        labels=tuple(info.labels),
        auth=info.auth,
    )


def status() -> ApiStatus:
    """The API's state (asked at most every 2 s per URL and key)."""
    s = settings()
    return _status(s.api_url, api_key(), s.timeout_s)


def require_api() -> ApiStatus:
    """The API's state; stops the page (the banner above says why) when it is unreachable."""
    st_ = status()
    if not st_.ok:
        st.stop()
    return st_
