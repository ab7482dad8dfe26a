"""Shared fixtures: one local Spark session and one local registry for the whole run.

Every test that touches the registry works on its own model name (``fresh_model``), so
tests do not see each other's versions and aliases.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from helpers import data_args, model_args

PROJECT_DIR = Path(__file__).resolve().parents[1]
_models = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def local_state(tmp_path_factory) -> Path:
    """A fresh local state folder (registry, artifacts, tables) for this test run."""
    from {{ cookiecutter.project_slug }}.runtime import LOCAL_DIR_ENV, configure_mlflow

    folder = tmp_path_factory.mktemp("mlops_local")
    previous = os.environ.get(LOCAL_DIR_ENV)
    os.environ[LOCAL_DIR_ENV] = str(folder)
    configure_mlflow()
    yield folder
    if previous is None:
        os.environ.pop(LOCAL_DIR_ENV, None)
    else:
        os.environ[LOCAL_DIR_ENV] = previous


@pytest.fixture(scope="session")
def spark(local_state):
    from {{ cookiecutter.project_slug }}.runtime import get_spark

    return get_spark()


@pytest.fixture
def fresh_model():
    """A model name no other test uses, in the test catalog."""
    from {{ cookiecutter.project_slug }}.names import ModelRef

    return ModelRef("unit", "ml", f"model_{next(_models)}")


@pytest.fixture
def trained(spark, fresh_model):
    """``fresh_model`` with one trained version; returns (model_ref, version)."""
    from {{ cookiecutter.project_slug }} import train

    version = train.main([*model_args(fresh_model), "--experiment_name=/tests/unit", *data_args()])
    return fresh_model, version


@pytest.fixture
def champion(trained):
    """``fresh_model`` with a validated, deployed champion; returns (model_ref, version)."""
    from {{ cookiecutter.project_slug }} import deploy, validate

    model_ref, version = trained
    validate.main([*model_args(model_ref), f"--model_version={version}", "--experiment_name=/tests/unit", *data_args()])
    deploy.main(model_args(model_ref))
    return model_ref, version
