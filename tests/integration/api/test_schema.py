"""Schemathesis against the OpenAPI schema, on the ASGI app in-process: whatever the generated
input, no 5xx, and every answer is JSON-shaped as documented."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from harclip.model.bundle import Bundle
from tests.support.api import api_settings
from tests.support.scoped import Unique


def test_no_server_errors(unique: Unique, tiny_bundle: Path) -> None:
    from schemathesis.python import asgi

    app = create_app(
        api_settings(unique.settings, max_body_bytes=256 * 1024, allowed_hosts=("testserver",)),
        Bundle.load(tiny_bundle),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 12
    strategy = st.one_of(*(op.as_strategy() for op in operations))
    failures: list[str] = []

    @given(case=strategy)
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call()
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:200]}"
            )
        elif response.status_code >= 400:
            assert set(response.json()["error"]) == {"code", "message"}

    try:
        check()
    finally:
        asgi.shutdown_lifespans()
    assert not failures, "\n".join(failures[:10])
