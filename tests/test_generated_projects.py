"""`databricks bundle validate` on baked projects, where the CLI and a workspace are at hand.

The generated projects' own test suites and their local end-to-end runs are run the way their
README says, in the project's own environment: tests/test_readme_walkthrough.py.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

PATTERNS = ["deploy_code", "deploy_models", "hybrid"]


@pytest.mark.skipif(shutil.which("databricks") is None, reason="the Databricks CLI is not installed on this machine")
@pytest.mark.parametrize("pattern", PATTERNS)
def test_databricks_bundle_validate(baked, pattern):
    """Needs the CLI and a workspace profile: `databricks bundle validate` resolves against a live workspace."""
    project = baked(deployment_pattern=pattern)
    for target in ("dev", "test", "staging", "prod"):
        result = subprocess.run(
            ["databricks", "bundle", "validate", "--strict", "-t", target], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
