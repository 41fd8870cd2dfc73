"""The docs stay true: every setting is in the README, every sample parses."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.settings import Settings
from tests.support import SAMPLES

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_the_readme() -> None:
    from bridge.sinks.factory import SinkConfig

    readme = (ROOT / "README.md").read_text()
    # `sink_config` is read from its own fields' variables (BRIDGE_SINKS, BRIDGE_REDIS_URL...).
    names = [n for n in Settings.model_fields if n != "sink_config"] + list(SinkConfig.model_fields)
    missing = [f"BRIDGE_{n.upper()}" for n in names if f"`BRIDGE_{n.upper()}`" not in readme]
    assert missing == []


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_samples_are_listed_and_valid() -> None:
    listing = (SAMPLES / "README.md").read_text()
    for path in SAMPLES.iterdir():
        if path.suffix == ".json":
            json.loads(path.read_text())
        if path.suffix in (".json", ".form"):
            assert f"`{path.name}`" in listing, path.name


def test_changelog_exists_with_unreleased_section() -> None:
    assert "## Unreleased" in (ROOT / "CHANGELOG.md").read_text()
