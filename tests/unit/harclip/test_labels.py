"""The 15 HAR classes and their prompt ensembles."""

from __future__ import annotations

import csv
from pathlib import Path

from harclip.labels import HAR_CLASSES, PROMPT_TEMPLATES, default_label_set, phrase, prompts_for


def test_fifteen_distinct_snake_case_classes() -> None:
    assert len(HAR_CLASSES) == 15
    assert len(set(HAR_CLASSES)) == 15
    assert all(c.isidentifier() and c == c.lower() for c in HAR_CLASSES)


def test_classes_are_those_of_the_sample_data(sample_data: Path) -> None:
    with (sample_data / "har-sample" / "labels.csv").open() as f:
        labels = {row["label"] for row in csv.DictReader(f)}
    assert labels == set(HAR_CLASSES)


def test_every_template_has_one_slot() -> None:
    assert len(PROMPT_TEMPLATES) >= 5
    assert all(t.count("{}") == 1 for t in PROMPT_TEMPLATES)


def test_phrases_read_as_words() -> None:
    assert phrase("using_laptop") == "using a laptop"
    assert phrase("waving_hands") == "waving hands"  # unknown labels: underscores become spaces
    assert all("_" not in phrase(c) for c in HAR_CLASSES)


def test_prompts_of_a_label() -> None:
    prompts = prompts_for("cycling")
    assert len(prompts) == len(PROMPT_TEMPLATES)
    assert prompts[0] == "a photo of a person riding a bike."
    assert all("riding a bike" in p for p in prompts)
    assert prompts_for("x", ["{}!"]) == ["x!"]


def test_default_label_set_in_class_order() -> None:
    ls = default_label_set()
    assert tuple(ls) == HAR_CLASSES
    assert all(ls[c] == prompts_for(c) for c in HAR_CLASSES)
    assert len({p for ps in ls.values() for p in ps}) == 15 * len(PROMPT_TEMPLATES)  # no clashes
