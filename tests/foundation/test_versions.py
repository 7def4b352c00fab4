"""The package version, the changelog and the shipped model files tell one story."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata

from steth.edge.assets import ASSETS_DIR, DEFAULT_MODEL_NAME, DETECTOR_NAME
from tests.conftest import REPO_ROOT


def newest_entry() -> tuple[str, str]:
    text = (REPO_ROOT / "CHANGELOG.md").read_text()
    match = re.search(r"^## (\d+\.\d+\.\d+)[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "CHANGELOG.md has no release entry"
    return match.group(1), match.group(2)


def test_the_newest_changelog_entry_is_the_package_version():
    version, _ = newest_entry()
    runtime = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    train = tomllib.loads((REPO_ROOT / "models" / "pyproject.toml").read_text())["project"]
    assert runtime["version"] == train["version"] == version
    assert f"lungsound-steth=={version}" in train["dependencies"]
    assert metadata.version("lungsound-steth") == version


def test_the_newest_entry_names_the_shipped_classifier_and_detector():
    _, body = newest_entry()
    ships = body.split("\n\n")[0]
    for name in (DEFAULT_MODEL_NAME, DETECTOR_NAME):
        manifest = json.loads((ASSETS_DIR / f"{name}.manifest.json").read_text())
        assert f"{manifest['name']} {manifest['version']}" in ships, (name, ships)
        assert manifest["weights_sha256"][:9] in ships, (name, ships)
