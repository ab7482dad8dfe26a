from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from bake import bake  # noqa: E402


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """Factory: ``baked(**answers)`` bakes once per distinct answers and returns the project dir."""
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("baked")

    def _bake(**answers: object) -> Path:
        key = json.dumps(answers, sort_keys=True)
        if key not in cache:
            digest = hashlib.sha1(key.encode()).hexdigest()[:10]
            cache[key] = bake(root / digest, **answers)
        return cache[key]

    return _bake


@pytest.fixture(scope="session")
def bundle_schema_path() -> Path:
    """The official bundle JSON schema, or skip with the reason."""
    env = os.environ.get("DATABRICKS_BUNDLE_SCHEMA")
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.fail(f"DATABRICKS_BUNDLE_SCHEMA={env} does not exist")
        return path
    import shutil
    import subprocess

    if shutil.which("databricks"):
        out = Path(os.environ.get("TMPDIR", "/tmp")) / "databricks-bundle.schema.json"
        out.write_text(
            subprocess.run(["databricks", "bundle", "schema"], check=True, capture_output=True, text=True).stdout
        )
        return out
    pytest.skip("no bundle schema: set DATABRICKS_BUNDLE_SCHEMA (see .ci/run) or install the databricks CLI")
