"""The bounded YAML loader, and every YAML reader of the project going through it: an alias
bomb, deep nesting and an over-large document are refused in one clear line, never expanded or
crashed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from harclip import yamlsafe
from harclip.errors import ConfigError, MessageError
from harclip.model.relabel import load_label_set
from harclip.rules import RulesError, parse_rules
from training.config import load_config, parse_override
from ui.editors import parse_rules as ui_parse_rules

# 9 levels of 9 aliases each: 539 bytes that expand to 9**9 strings with a plain safe_load
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
DEEP = "[" * 3000 + "]" * 3000  # 6 kB: a RecursionError in PyYAML's composer
DEEP_BLOCK = "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v"


def test_plain_documents_load_as_before() -> None:
    text = "rules:\n  - name: fall\n    label: falling\n    min_score: 0.5\n    streams: [a, b*]\n"
    assert yamlsafe.load(text) == {
        "rules": [{"name": "fall", "label": "falling", "min_score": 0.5, "streams": ["a", "b*"]}]
    }
    assert yamlsafe.load("") is None
    assert yamlsafe.load("x: &anchor 1\n") == {"x": 1}  # an anchor alone expands nothing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, r"aliases are not accepted \(\*a at line 2\)"),
        (DEEP, "nested deeper than 64 levels"),
        (DEEP_BLOCK, "nested deeper than 64 levels"),
        ("x: " + "y" * 2_000_000, "over the limit of 1048576 bytes"),
        ("!!python/object/apply:os.system ['true']", "could not determine a constructor"),
    ],
)
def test_hostile_documents_are_refused(text: str, message: str) -> None:
    with pytest.raises(yamlsafe.YamlError, match=message) as e:
        yamlsafe.load(text)
    assert len(str(e.value)) < 300


def test_the_node_cap() -> None:
    assert yamlsafe.load("[1, 2]", max_nodes=3) == [1, 2]
    with pytest.raises(yamlsafe.YamlError, match="more than 3 values"):
        yamlsafe.load("[1, 2, 3]", max_nodes=3)


def test_every_reader_refuses_in_its_own_words(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="not valid YAML: aliases are not accepted"):
        parse_rules(BOMB)
    with pytest.raises(RulesError, match="nested deeper"):
        parse_rules(DEEP)
    with pytest.raises(ValueError, match="not YAML: aliases are not accepted"):
        ui_parse_rules(BOMB)
    with pytest.raises(ValueError, match="not YAML: nested deeper"):
        ui_parse_rules(DEEP)
    labels = tmp_path / "labels.yaml"
    labels.write_text(BOMB)
    with pytest.raises(MessageError, match="invalid YAML: aliases"):
        load_label_set(labels)
    config = tmp_path / "params.yaml"
    config.write_text(DEEP)
    with pytest.raises(ConfigError, match="not valid YAML: nested deeper"):
        load_config(config)
    assert parse_override("data.classes=[*a]") == ("data.classes", "[*a]")  # kept as text
