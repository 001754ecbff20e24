"""`harclip retention`'s pure parts: the S3 lifecycle rules follow the retention settings."""

from __future__ import annotations

from harclip.cli.retention import lifecycle_rules
from harclip.config import ElasticsearchSettings, Settings


def test_lifecycle_rules_expire_each_prefix_after_its_familys_days() -> None:
    es = ElasticsearchSettings(predictions_retention_days=7, events_retention_days=90)
    rules = lifecycle_rules(Settings(elasticsearch=es))["Rules"]
    assert {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in rules} == {
        "evidence/": 90, "thumbs/": 7,
    }  # fmt: skip
    assert all(r["Status"] == "Enabled" and r["ID"].startswith("harclip-") for r in rules)
