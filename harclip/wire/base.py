"""The base of every wire type, the resume position type and the one error shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from harclip.errors import HarclipError

_MODEL_EXAMPLE: dict[str, Any] = {"name": "clip-vit-b-32-har", "version": "1", "head_version": 3}

# A Redis Stream entry id ("<ms>-<seq>", or "<ms>"): a resume position of a subscription. ASCII
# digits only: `\d` would also take other scripts' digits, which Redis refuses.
EntryId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$", max_length=41)]


class WireModel(BaseModel):
    """Base of every wire type: immutable. Unknown fields are ignored, so a client keeps reading
    a newer server that added some."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    def to_json(self) -> str:
        """The JSON text sent on the wire (field aliases such as Prediction's `schema` applied)."""
        return self.model_dump_json(by_alias=True)


class _Request(WireModel):
    """A body a client sends: unknown fields are refused (422), so a typo is not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# ----------------------------------------------------------------------------- errors


class ErrorDetail(WireModel):
    code: str = Field(examples=["invalid_image"])
    message: str = Field(examples=["image: not a JPEG, PNG, WebP, BMP or GIF image"])


class ErrorBody(WireModel):
    """Every HTTP error answer: a stable machine `code` and a message for people."""

    error: ErrorDetail


class ApiError(HarclipError):
    """An expected failure of an API call, with its HTTP `status`, machine `code`, `message` for
    people and the response `headers` to send (e.g. Retry-After). The API raises it to answer;
    the client raises it (as a subclass by status, see `harclip.client.errors`) when answered."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    @property
    def detail(self) -> ErrorDetail:
        return ErrorDetail(code=self.code, message=self.message)

    def body(self) -> ErrorBody:
        """The HTTP answer's body."""
        return ErrorBody(error=self.detail)

    def message_for_ws(self, seq: int | None = None) -> ErrorMessage:
        """The same failure as a WebSocket `error` message (`seq`: the ingest frame it is about;
        `retry_after`: the Retry-After header's seconds, when it has one)."""
        raw = self.headers.get("Retry-After", "")
        retry_after = int(raw) if raw.isascii() and raw.isdigit() else None
        return ErrorMessage(status=self.status, error=self.detail, seq=seq, retry_after=retry_after)


class ErrorMessage(WireModel):
    """A failure on a WebSocket; `status` is what HTTP would have answered, `seq` the ingest
    frame it is about (None when it is about the connection), `retry_after` the seconds HTTP's
    Retry-After would have said (a transient refusal: 429 `rate_limited`, 503 `overloaded`)."""

    type: Literal["error"] = "error"
    status: int
    error: ErrorDetail
    seq: int | None = None
    retry_after: int | None = Field(None, ge=0)

    def exception(self) -> ApiError:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return ApiError(self.status, self.error.code, self.error.message, headers)
