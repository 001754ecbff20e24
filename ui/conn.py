"""The UI's one way to the API: one `harclip.client.Client` per (URL, key), and `call`, which
turns every client error into an `st.error` message (never a traceback).

Each session acts with the key its user enters in the sidebar (kept in session state, never
shown back), else with `HARCLIP_UI__API_KEY` only when that is a read-only key: a server-held
key that may write (an admin key) would act for every visitor, so it is checked against the API
(`key_may_write`) and refused (`server_key_refused`).

The events app's data (`events`, `stream_action`, `stream_stats`, `rules`) may not exist (the
app does not run) or an older API may lack the route: `optional` tells those apart from
failures, so a page says "events app not running" instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import streamlit as st

from harclip.client import ApiError, Client, ConnectionFailed, NotFound
from harclip.config import UiSettings, load_settings
from harclip.errors import HarclipError
from ui.text import md

T = TypeVar("T")
_KEY_STATE = "harclip_api_key"  # the sidebar key of this session (not a widget key)


@st.cache_resource(show_spinner=False)
def settings() -> UiSettings:
    """The UI's settings, read once per process."""
    return load_settings().ui


def api_key() -> str | None:
    """The key this session signed in with, else `HARCLIP_UI__API_KEY` when it is read-only,
    else none."""
    key = st.session_state.get(_KEY_STATE)
    if isinstance(key, str) and key:
        return key
    return None if server_key_refused() else _configured_key()


def set_session_key(key: str | None) -> None:
    st.session_state[_KEY_STATE] = key or None


def signed_in() -> bool:
    return bool(st.session_state.get(_KEY_STATE))


def _configured_key() -> str | None:
    configured = settings().api_key
    return configured.get_secret_value() if configured is not None else None


def server_key_refused() -> str | None:
    """Why `HARCLIP_UI__API_KEY` is not used (it may write, or the API could not say whether it
    may), or None when it is read-only or not set."""
    key = _configured_key()
    if key is None:
        return None
    s = settings()
    may = key_may_write(s.api_url, key, s.timeout_s)
    if may is False:
        return None
    if may:
        return (
            "HARCLIP_UI__API_KEY may write (an admin key), so the UI does not use it: it would "
            "act for every visitor. Configure a read-only key (role read) or none, and sign in "
            "with your own key to write."
        )
    return "HARCLIP_UI__API_KEY is not used until the API says it is read-only."


@st.cache_data(ttl=60.0, show_spinner=False)
def key_may_write(url: str, key: str, timeout_s: float) -> bool | None:
    """Whether `key` may write to the API at `url`: True, False, or None when the API does not
    say. Asked with an empty `PUT /labels`, which changes nothing: the API checks the key
    first (401 or 403 for a key that may not write) and then refuses the empty body (422)."""
    try:
        r = httpx.put(
            f"{url}/labels", json={"labels": []}, headers={"X-API-Key": key}, timeout=timeout_s
        )
    except httpx.HTTPError:
        return None
    return {422: True, 401: False, 403: False}.get(r.status_code)


def key_source() -> str:
    """Where the key in use comes from, for the Settings page (never the key itself)."""
    if signed_in():
        return "this browser session (signed in)"
    if _configured_key() is None:
        return "none"
    return (
        "HARCLIP_UI__API_KEY (refused)"
        if server_key_refused()
        else "HARCLIP_UI__API_KEY (read-only)"
    )


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
    random_weights: bool = False  # the served model's encoder is random (labels mean nothing)


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
        random_weights=info.random_weights,
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
