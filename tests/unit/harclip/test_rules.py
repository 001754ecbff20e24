"""Alert rules: the YAML shape of the issue parses; every mistake is named by rule and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harclip.cli import main
from harclip.rules import DownRule, LabelRule, Rules, RulesError, load_rules_file, parse_rules

GOOD = """
rules:
  - name: fight
    label: fighting
    min_score: 0.6
    for_seconds: 2
    streams: ["*"]
    severity: critical
    cooldown_seconds: 60
  - name: camera-lost
    stream_down_after_seconds: 30
    severity: warning
  - name: sport
    labels: [running, cycling]
    streams: ["gym-*", "park-?"]
"""


def test_the_issue_s_rules_parse() -> None:
    rules = parse_rules(GOOD)
    fight, lost, sport = rules.rules
    assert isinstance(fight, LabelRule) and fight.watched == ("fighting",)
    assert fight.severity == "critical" and fight.for_seconds == 2 and fight.min_score == 0.6
    assert isinstance(lost, DownRule) and lost.stream_down_after_seconds == 30
    assert isinstance(sport, LabelRule) and sport.watched == ("running", "cycling")
    assert sport.matches("gym-3") and sport.matches("park-a") and not sport.matches("cam-1")
    assert Rules.from_control(rules.to_control(123)) == rules


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("rules: [{name: a, label: x, min_score: 2}]", "rule 1 ('a'): field 'min_score'"),
        ("rules: [{name: a, label: x, labels: [y]}]", "rule 1 ('a'): field 'label/labels'"),
        ("rules: [{name: a}]", "rule 1 ('a'): field 'label/labels'"),
        ("rules: [{name: a, label: x, severity: loud}]", "rule 1 ('a'): field 'severity'"),
        ("rules: [{name: a, label: x, colour: red}]", "rule 1 ('a'): field 'colour'"),
        ("rules: [{name: a, label: x}, {name: b, stream_down_after_seconds: 0}]",
         "rule 2 ('b'): field 'stream_down_after_seconds'"),
        ("rules: [{label: x}]", "rule 1: field 'name'"),
        ("rules: [{name: a, label: x}, {name: a, label: y}]", "rule 2 ('a'): field 'name': used twice"),  # noqa: E501
        ("rules: 3", "'rules' must be a list"),
        ("other: []", "expected a mapping with one key 'rules'"),
        ("rules: [", "not valid YAML"),
        ("rules: [{name: a, label: x, cooldown_seconds: .inf}]", "field 'cooldown_seconds'"),
        ("rules: [{name: a, label: x, for_seconds: 1e400}]", "field 'for_seconds'"),
        ("rules: [{name: a, label: x, min_score: .nan}]", "field 'min_score'"),
        ("rules: [{name: a, stream_down_after_seconds: Infinity}]",
         "field 'stream_down_after_seconds'"),
        (f"rules: [{{name: a, label: {'x' * 101}}}]", "field 'label'"),
        (f"rules: [{{name: a, labels: [{', '.join(['x'] * 101)}]}}]", "field 'labels'"),
        (f"rules: [{{name: a, labels: [y, {'x' * 101}]}}]", "field 'labels.1'"),
        (f"rules: [{{name: a, label: x, streams: [{'s' * 257}]}}]", "field 'streams.0'"),
        (f"rules: [{{name: a, label: x, streams: [{', '.join(['s'] * 101)}]}}]",
         "field 'streams'"),
        ("rules: [" + ", ".join(f"{{name: r{i}, label: x}}" for i in range(501)) + "]",
         "501 rules, at most 500"),
        ("rules: " + "[" * 2000 + "]" * 2000, "not valid YAML: nested deeper"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_naming_rule_and_field(yaml: str, message: str) -> None:
    with pytest.raises(RulesError, match=r"^r\.yaml: ") as e:
        parse_rules(yaml, source="r.yaml")
    assert message in str(e.value)


def test_bad_control_records_are_refused() -> None:
    for raw in (b"not json", b'{"rules": []}', b'{"schema": "harclip.rules/1", "rules": 5}'):
        with pytest.raises(RulesError):
            Rules.from_control(raw)


def test_a_deeply_nested_rules_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    deep = tmp_path / "rules.yaml"
    deep.write_text("rules:\n" + "  - " * 1000 + "x\n")  # 4 kB of nesting
    with pytest.raises(RulesError, match="nested deeper than 64 levels"):
        load_rules_file(deep)


def test_cli_refuses_a_bad_file_before_publishing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules: [{name: fight, label: fighting, for_seconds: -1}]\n")
    assert main(["rules", "set", str(bad)]) == 2
    assert "rule 1 ('fight'): field 'for_seconds'" in capsys.readouterr().err
    assert main(["rules", "set", str(tmp_path / "missing.yaml")]) == 2
