"""The one JSON codec of the messages that travel as JSON (Prediction, Event): pydantic's JSON
(field order as declared, `schema` first), a schema check, and `MessageError` naming the first
bad field."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from harclip.errors import MessageError


class _Omitting(BaseModel):
    """`OMIT_EMPTY` names optional fields added after a schema's first version: left out of the
    JSON while None or empty, so messages without them keep their bytes (and their size)."""

    model_config = ConfigDict(allow_inf_nan=False)

    OMIT_EMPTY: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(self)
        if self.OMIT_EMPTY and isinstance(out, dict):
            for name in self.OMIT_EMPTY:
                if out.get(name, 0) in (None, {}, []):
                    del out[name]
        return out


class Part(_Omitting):
    """A frozen part of a message (a score, a model reference): no fields beyond its own."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Message(_Omitting):
    """A versioned JSON message: `SCHEMA` names its version and is the first field, `schema`."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )

    SCHEMA: ClassVar[str]
    schema_: str = Field(alias="schema")  # each message sets its SCHEMA as the default

    def to_json(self) -> bytes:
        """The message as JSON bytes (what Kafka, Redis and Elasticsearch hold)."""
        return self.model_dump_json(by_alias=True).encode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Parse and check a message; `MessageError` naming the first bad field or the schema."""
        try:
            m = cls.model_validate_json(raw)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise MessageError(f"invalid {cls.__name__}: {loc}: {err['msg']}") from None
        if m.schema_ != cls.SCHEMA:
            raise MessageError(f"unsupported schema {m.schema_!r} (expected {cls.SCHEMA!r})")
        return m
