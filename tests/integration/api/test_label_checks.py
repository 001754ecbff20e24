"""PUT /labels takes label names and prompts as text: a name with a control character or an
ANSI escape is refused, prompts given for a name with spaces around it are used (never silently
replaced by the defaults), and one request cannot ask for thousands of text encodings."""

from __future__ import annotations

import pytest

from harclip.client import BadRequest
from tests.support.api import Serve


async def test_prompts_for_a_spaced_name_are_used(serve: Serve) -> None:
    async with serve() as client:
        mine = ["two people punching each other."]
        got = await client.set_labels([" fight ", "sitting"], {" fight ": mine})
        assert got.labels == ["fight", "sitting"]
        assert got.prompts["fight"] == mine
        assert len(got.prompts["sitting"]) > 1  # the default ensemble


@pytest.mark.parametrize(
    ("labels", "prompts", "message"),
    [
        (["a\x1fb", "c"], {}, "control characters"),
        (["\x1b[31mred\x1b[0m", "c"], {}, "control characters"),
        (["tab\tbed", "c"], {}, "control characters"),
        (["a", "b"], {"a": ["a photo\x1b[2J of a"]}, "control character"),
        ([f"l{i}" for i in range(200)], {f"l{i}": ["p"] * 64 for i in range(200)}, "at most 2048"),
        (["a", "b"], {"a": ["x"], " a ": ["y"]}, "given twice"),
    ],
)
async def test_hostile_label_sets_are_refused(
    serve: Serve, labels: list[str], prompts: dict[str, list[str]], message: str
) -> None:
    async with serve() as client:
        before = await client.labels()
        with pytest.raises(BadRequest) as e:
            await client.set_labels(labels, prompts)
        assert e.value.status == 422 and message in e.value.message
        assert (await client.labels()).version == before.version
