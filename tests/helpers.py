"""Shared helpers of the template tests."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from bake import TEMPLATE_DIR

DEFAULTS: dict = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
BIN = Path(sys.executable).parent


def load_hook(name: str) -> ModuleType:
    """Import hooks/<name>.py as a module (it is valid Python before Jinja renders it)."""
    path = TEMPLATE_DIR / "hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"hook_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_answers(slug: str = "fare_model") -> dict:
    """A complete, valid context as cookiecutter would pass it to the hooks."""
    return {
        "project_name": "Fare Model",
        "project_slug": slug,
        "description": "Predicts fares.",
        "deployment_pattern": "deploy_code",
        "cicd_platform": "github_actions",
        "cloud": "azure",
        "compute": "serverless",
        "dev_workspace_host": "",
        "staging_workspace_host": "https://adb-1.1.azuredatabricks.net",
        "prod_workspace_host": "https://adb-2.2.azuredatabricks.net/",
        "dev_catalog": "dev",
        "test_catalog": "test",
        "staging_catalog": "staging",
        "prod_catalog": "prod",
        "schema_name": slug,
        "model_name": f"{slug}_model",
        "ci_service_principal": "00000000-0000-0000-0000-000000000003",
        "staging_service_principal": "00000000-0000-0000-0000-000000000001",
        "prod_service_principal": "00000000-0000-0000-0000-000000000002",
        "read_group": "users",
        "uc_read_group": "account users",
        "default_branch": "main",
        "release_branch": "release",
        "notification_emails": "",
        "include_monitoring": True,
        "include_serving_endpoint": False,
        "include_feature_store": False,
        "__monorepo": "False",
    }
