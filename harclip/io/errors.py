"""The one mapping of a service client's failures to harclip's errors.

Each client module says, per exception, whether the fault is transient (the service did not
answer, or answered "not now") or permanent (it refused the request), and whether the function
is a write or a read; `mapped` turns that into the error that means it:

|           | transient          | permanent     |
|-----------|--------------------|---------------|
| write     | `SinkUnavailable`  | `SinkRefused` |
| read      | `ReadUnavailable`  | `ReadRefused` |
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, Literal, ParamSpec, TypeVar

from harclip.errors import ReadRefused, ReadUnavailable, SinkRefused, SinkUnavailable

Fault = Literal["transient", "permanent"]
Op = Literal["read", "write"]
# exception -> (fault, reason for people), or None for an exception that is not the client's
Classifier = Callable[[BaseException], tuple[Fault, str] | None]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Async = Callable[_P, Coroutine[Any, Any, _T]]


def error_for(service: str, op: Op, fault: Fault, what: str, reason: str) -> Exception:
    """The harclip error for a `fault` of `service` while doing `what` (a function's name)."""
    message = f"{service} {what}: {reason}"
    if op == "write":
        return SinkUnavailable(message) if fault == "transient" else SinkRefused(message)
    return ReadUnavailable(message) if fault == "transient" else ReadRefused(message)


def mapped(
    service: str, classify: Classifier
) -> Callable[[Op], Callable[[_Async[_P, _T]], _Async[_P, _T]]]:
    """A decorator factory for `service`'s client functions: `@wrap("write")` / `@wrap("read")`.

    Exceptions `classify` recognises become the table's error (chained); others pass through.
    """

    def for_op(op: Op) -> Callable[[_Async[_P, _T]], _Async[_P, _T]]:
        def decorate(fn: _Async[_P, _T]) -> _Async[_P, _T]:
            @wraps(fn)
            async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
                try:
                    return await fn(*args, **kwargs)
                except (SinkUnavailable, SinkRefused, ReadUnavailable, ReadRefused):
                    raise
                except Exception as e:
                    found = classify(e)
                    if found is None:
                        raise
                    fault, reason = found
                    raise error_for(service, op, fault, fn.__name__, reason) from e

            return wrapper

        return decorate

    return for_op
