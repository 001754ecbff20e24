"""The one YAML loader of the project (rules, label files, training configs, the UI's editors):
YAML's safe subset with no aliases, and caps on size, nesting and node count, so a small
document can neither expand into a large one (an alias bomb) nor exhaust the stack.

`load` raises `YamlError`, a `yaml.YAMLError`, with one line saying which cap was hit; callers
that already catch `yaml.YAMLError` report it as they report a syntax error.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1_048_576  # a document's size, UTF-8 bytes
MAX_DEPTH = 64  # nested sequences and mappings
MAX_NODES = 100_000  # scalars, sequences and mappings together


class YamlError(yaml.YAMLError):  # type: ignore[misc]  # PyYAML has no stubs here
    """A YAML document the bounded loader refuses (or cannot parse)."""


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]
    """`SafeLoader` that refuses aliases and counts depth and nodes while composing, before
    anything is constructed."""

    max_depth = MAX_DEPTH
    max_nodes = MAX_NODES

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlError(
                f"aliases are not accepted (*{event.anchor} at line {event.start_mark.line + 1});"
                " write the value out"
            )
        self._nodes += 1
        if self._nodes > self.max_nodes:
            raise YamlError(f"more than {self.max_nodes} values in one document")
        self._depth += 1
        if self._depth > self.max_depth:
            line = self.peek_event().start_mark.line + 1
            raise YamlError(f"nested deeper than {self.max_depth} levels (line {line})")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(
    text: str | bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> Any:
    """The one document in `text` as plain data (dicts, lists, scalars); `YamlError` when it is
    over `max_bytes` (UTF-8), nested deeper than `max_depth`, has more than `max_nodes` values,
    uses an alias, or is not valid YAML."""
    size = len(text)  # characters are never more than their UTF-8 bytes
    if size <= max_bytes and isinstance(text, str):
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise YamlError(f"document of {size} bytes is over the limit of {max_bytes} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise YamlError(f"not UTF-8: {e}") from None
    loader = _BoundedLoader(text)
    loader.max_depth, loader.max_nodes = max_depth, max_nodes
    try:
        return loader.get_single_data()
    except RecursionError:  # a cap above the interpreter's stack; refuse rather than crash
        raise YamlError("nested too deeply") from None
    except YamlError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise YamlError(f"{e.problem or e.context or 'invalid YAML'}{where}") from None
    except yaml.YAMLError as e:
        raise YamlError(" ".join(str(e).split())) from None
    finally:
        loader.dispose()
