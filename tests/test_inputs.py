"""Baking with bad answers writes nothing; legal but hostile answers bake and parse."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from bake import TEMPLATE_DIR, bake
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter


@pytest.mark.parametrize(
    "answers",
    [
        {"project_slug": "My-Project"},
        {"project_slug": "class"},
        {"project_name": "", "project_slug": "x"},
        {"staging_workspace_host": "http://adb-1.1.azuredatabricks.net"},
        {"prod_workspace_host": "prod.cloud.databricks.com"},
        {"dev_catalog": "dev-catalog"},
        {"schema_name": "my schema"},
        {"staging_catalog": "prod"},
        {"prod_service_principal": "not-a-uuid"},
        {"read_group": ""},
        {"release_branch": "release..1"},
        {"release_branch": "main"},
    ],
    ids=lambda answers: ",".join(f"{k}={v}" for k, v in answers.items()),
)
def test_bad_answers_are_refused_and_nothing_is_left(tmp_path, capfd, answers):
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    err = capfd.readouterr().err
    key = next(iter(answers))
    assert "the project was not generated" in err and f"{key}=" in err


def test_an_unknown_choice_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="deployment_pattern"):
        cookiecutter(
            str(TEMPLATE_DIR), no_input=True, extra_context={"deployment_pattern": "canary"}, output_dir=str(tmp_path)
        )
    assert list(tmp_path.iterdir()) == []


HOSTILE = {
    "project_name": 'It\'s "Fare" #1: {braces} & more',
    "project_slug": "fare_model",
    "description": 'Predicts fares: "yellow" cabs\' #tips {x} \\ back-slash',
    "read_group": "data scientists",
    "staging_workspace_host": "https://adb-1234.5.azuredatabricks.net/",
}


@pytest.mark.parametrize("pattern", ["deploy_code", "deploy_models", "hybrid"])
def test_hostile_but_legal_answers_bake_and_round_trip(tmp_path, pattern):
    project = bake(tmp_path, deployment_pattern=pattern, cicd_platform="gitlab", **HOSTILE)
    for path in project.rglob("*"):
        if path.suffix in (".yml", ".yaml"):
            yaml.safe_load(path.read_text())
        elif path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == HOSTILE["description"]
    artifacts = yaml.safe_load((project / "resources" / "ml_artifacts.yml").read_text())
    assert artifacts["resources"]["registered_models"]["model"]["comment"] == HOSTILE["description"]
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    assert bundle["variables"]["read_group"]["default"] == "data scientists"
    assert bundle["targets"]["staging"]["workspace"]["host"] == "https://adb-1234.5.azuredatabricks.net"
    assert HOSTILE["project_name"] in (project / "README.md").read_text()


def test_the_replay_file_rebakes_the_same_project(tmp_path):
    first = bake(tmp_path / "first", deployment_pattern="hybrid", cicd_platform="gitlab", **HOSTILE)
    replay = first / ".cookiecutter-replay.json"
    assert replay.is_file()
    again = Path(cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(tmp_path / "again")))
    first_files = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}
    again_files = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first_files == again_files
