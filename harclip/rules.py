"""Alert rules of the events app: the YAML file, its validation (errors name the rule and the
field), and the `rules` record on `harclip.control` that changes them at run time.

```yaml
rules:
  - name: fight
    label: fighting        # or labels: [a, b]
    min_score: 0.6         # smoothed score, 0..1
    for_seconds: 2         # held this long (capture time)
    streams: ["*"]         # globs on stream_id
    severity: critical     # info | warning | critical
    cooldown_seconds: 60   # no repeat for this stream within this time
  - name: camera-lost
    stream_down_after_seconds: 30
    severity: warning
```
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from harclip import yamlsafe
from harclip.config import KafkaSettings
from harclip.control import RULES_KEY, ControlFollower, publish
from harclip.errors import ConfigError
from harclip.io.topics import start_producer
from harclip.messages import Severity

RULES_SCHEMA = "harclip.rules/1"


class RulesError(ConfigError):
    """A rules file or record is invalid; the message names the rule and the field."""


MAX_RULES = 500
MAX_LABEL_CHARS = 100  # as a label of the label set
MAX_LABELS = 100  # labels one rule watches
MAX_GLOB_CHARS = 256
MAX_GLOBS = 100
_Label = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_CHARS)]
_Glob = Annotated[str, StringConstraints(min_length=1, max_length=MAX_GLOB_CHARS)]


class _Rule(BaseModel):
    # finite numbers only: 1e400 or "Infinity" would be published as null and refused later
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=128)
    streams: tuple[_Glob, ...] = Field(
        ("*",), min_length=1, max_length=MAX_GLOBS, description="globs on stream_id"
    )
    severity: Severity = "warning"
    cooldown_seconds: float = Field(60.0, ge=0)

    def matches(self, stream_id: str) -> bool:
        return any(fnmatch.fnmatchcase(stream_id, g) for g in self.streams)


class LabelRule(_Rule):
    """Fires when the smoothed score of `label` (or the best of `labels`) has been at least
    `min_score` for `for_seconds` of capture time; then not again for the stream within
    `cooldown_seconds` of capture time."""

    kind: Literal["label"] = "label"
    label: _Label | None = None
    labels: tuple[_Label, ...] | None = Field(None, max_length=MAX_LABELS)
    min_score: float = Field(0.5, ge=0, le=1)
    for_seconds: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _one_of_label_labels(self) -> LabelRule:
        if (self.label is None) == (self.labels is None):
            raise ValueError("give exactly one of 'label' and 'labels'")
        if self.labels is not None and not self.labels:
            raise ValueError("'labels' must not be empty")
        return self

    @property
    def watched(self) -> tuple[str, ...]:
        return self.labels if self.labels is not None else (self.label or "",)


class DownRule(_Rule):
    """Fires when a stream has sent no prediction for `stream_down_after_seconds` (wall clock);
    once per silence, and not again for the stream within `cooldown_seconds` (wall clock)."""

    kind: Literal["stream_down"] = "stream_down"
    stream_down_after_seconds: float = Field(gt=0)


Rule = LabelRule | DownRule


class Rules(BaseModel):
    """A validated set of rules (names unique)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    rules: tuple[Rule, ...] = ()

    @property
    def label_rules(self) -> tuple[LabelRule, ...]:
        return tuple(r for r in self.rules if isinstance(r, LabelRule))

    @property
    def down_rules(self) -> tuple[DownRule, ...]:
        return tuple(r for r in self.rules if isinstance(r, DownRule))

    def to_control(self, updated_at: int) -> bytes:
        """The `rules` record for harclip.control (`updated_at`: ms since epoch)."""
        doc = {"schema": RULES_SCHEMA, "updated_at": updated_at, "rules": self.to_yaml_dicts()}
        return orjson.dumps(doc)

    def to_yaml_dicts(self) -> list[dict[str, Any]]:
        """The rules as the YAML file writes them (no defaults, no `kind`)."""
        return [
            r.model_dump(mode="json", exclude_defaults=True, exclude={"kind"}) for r in self.rules
        ]

    @classmethod
    def from_control(cls, raw: bytes) -> Rules:
        """Parse a `rules` record; `RulesError` naming the rule and the field."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise RulesError(f"rules record is not JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("schema") != RULES_SCHEMA:
            raise RulesError(f"rules record must be an object with schema {RULES_SCHEMA!r}")
        return rules_from_data({"rules": doc.get("rules")}, source="rules record")


def parse_rules(text: str, *, source: str = "rules") -> Rules:
    """Parse rules YAML; `RulesError` naming the rule (index and name) and the field."""
    try:
        data = yamlsafe.load(text)
    except yaml.YAMLError as e:
        raise RulesError(f"{source}: not valid YAML: {e}") from None
    return rules_from_data(data, source=source)


def load_rules_file(path: Path) -> Rules:
    """Read and parse a rules file (`RulesError` when missing or invalid)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise RulesError(f"cannot read rules file {path}: {e.strerror}") from None
    return parse_rules(text, source=str(path))


def rules_from_data(data: Any, *, source: str = "rules") -> Rules:
    """Validate rules given as plain data (`{"rules": [...]}`); `RulesError` naming the rule."""
    if data is None:
        return Rules()
    if not isinstance(data, dict) or set(data) - {"rules"}:
        raise RulesError(f"{source}: expected a mapping with one key 'rules' (a list)")
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise RulesError(f"{source}: 'rules' must be a list")
    if len(items) > MAX_RULES:
        raise RulesError(f"{source}: {len(items)} rules, at most {MAX_RULES}")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        rules.append(_one_rule(item, i, source))
        name = rules[-1].name
        if name in seen:
            raise RulesError(f"{source}: rule {i} ({name!r}): field 'name': used twice")
        seen.add(name)
    return Rules(rules=tuple(rules))


def _one_rule(item: Any, index: int, source: str) -> Rule:
    if not isinstance(item, dict):
        raise RulesError(f"{source}: rule {index}: expected a mapping, got {type(item).__name__}")
    name = item.get("name")
    where = f"{source}: rule {index}" + (f" ({name!r})" if isinstance(name, str) else "")
    kind: type[Rule] = DownRule if "stream_down_after_seconds" in item else LabelRule
    try:
        return kind.model_validate(item)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "label/labels"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise RulesError(f"{where}: field {field!r}: {msg}") from None


# ----------------------------------------------------------------------------- control topic


async def publish_rules(s: KafkaSettings, rules: Rules, *, updated_at: int) -> None:
    """Put `rules` on harclip.control (key `rules`); every events app applies them. Waits for
    Kafka's acknowledgement; `Unavailable` / `SinkUnavailable` when Kafka does not answer."""
    producer = await start_producer(s)
    try:
        await publish(producer, s, RULES_KEY, rules.to_control(updated_at))
    finally:
        await producer.stop()


async def read_published_rules(s: KafkaSettings) -> tuple[Rules, int] | None:
    """The newest valid `rules` record on harclip.control as (rules, updated_at ms), or None.
    Reads the topic from the beginning to its current end (`ControlFollower.catch_up`)."""
    records: list[bytes] = []
    follower = ControlFollower(s, {RULES_KEY: records.append})
    try:
        await follower.catch_up()
    finally:
        await follower.stop()
    for raw in reversed(records):
        try:
            rules = Rules.from_control(raw)
        except RulesError:
            continue
        return rules, int(orjson.loads(raw).get("updated_at", 0))
    return None


def describe(rules: Sequence[Rule]) -> list[str]:
    """One line per rule, for humans."""
    lines = []
    for r in rules:
        where = ",".join(r.streams)
        if isinstance(r, DownRule):
            what = f"no prediction for {r.stream_down_after_seconds:g} s"
        else:
            what = f"{'|'.join(r.watched)} >= {r.min_score:g} for {r.for_seconds:g} s"
        lines.append(f"{r.name}: {what} on {where} -> {r.severity} "
                     f"(cooldown {r.cooldown_seconds:g} s)")  # fmt: skip
    return lines
