"""A release is a commit: its pyproject.toml version is the CHANGELOG's latest version.

The README and CHANGELOG tell users to create or link projects at a commit and read which
version it is from pyproject.toml; the CHANGELOG's upgrade notes are per version, so the two
must name the same latest version (entries not yet released sit under "Unreleased").
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION_HEADING = re.compile(r"^## (\d+\.\d+\.\d+)\s*$", re.MULTILINE)


def changelog_versions(text: str) -> list[str]:
    """The version headings of a changelog, newest first (as written)."""
    return VERSION_HEADING.findall(text)


def test_the_changelog_latest_version_is_pyproject_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    versions = changelog_versions((ROOT / "CHANGELOG.md").read_text())
    assert versions, "CHANGELOG.md has no '## <major>.<minor>.<patch>' heading"
    assert versions[0] == version, f"CHANGELOG.md's latest version is {versions[0]}, pyproject.toml says {version}"


def test_the_changelog_lists_versions_newest_first():
    versions = changelog_versions((ROOT / "CHANGELOG.md").read_text())
    numbers = [tuple(int(part) for part in v.split(".")) for v in versions]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers), versions
