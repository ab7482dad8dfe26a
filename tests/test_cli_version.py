"""One Databricks CLI version everywhere: clitest/go.mod is where it is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_build import cli_version

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "{{cookiecutter.project_slug}}"
VERSION_MENTION = re.compile(r"(?:Databricks CLI|CLI) v?(\d+\.\d+\.\d+)|databricks[-_]cli[_@ ]v?(\d+\.\d+\.\d+)")


def mentions(text: str) -> set[str]:
    return {a or b for a, b in VERSION_MENTION.findall(text)}


def test_go_mod_pins_one_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", cli_version())
    go_sum = (REPO / "clitest" / "go.sum").read_text()
    assert f"github.com/databricks/cli v{cli_version()} h1:" in go_sum


def test_databricks_bundles_is_the_cli_version():
    pins = re.findall(r'"databricks-bundles==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pins == [cli_version()]


@pytest.mark.parametrize(
    "path",
    [
        *sorted((PROJECT / "src").rglob("*.py")),
        *sorted(PROJECT.glob(".github/workflows/*.yml")),
        *sorted(PROJECT.glob(".azure/pipelines/**/*.yml")),
        PROJECT / ".gitlab-ci.yml",
        PROJECT / "docs" / "ci-setup.md",
        REPO / "templates" / "databricks_cli.j2",
        REPO / "README.md",
        REPO / "docs" / "decisions.md",
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_mention_names_the_pinned_version(path):
    assert mentions(path.read_text()) <= {cli_version()}, path


def test_a_stale_mention_is_caught():
    assert mentions("Install the Databricks CLI 1.13.0") == {"1.13.0"}
    assert mentions("databricks_cli_1.13.0_linux_amd64.zip") == {"1.13.0"}
