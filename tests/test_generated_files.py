"""Fast checks over many option combinations: every generated file, every target.

One bake per combination (see matrix.py); each combination gets its own project slug
so all the generated packages import side by side in this process.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from bake import bake
from databricks.bundles.jobs import Job
from helpers import BIN
from matrix import combinations

COMBINATIONS = combinations()
IDS = ["-".join(str(v) for k, v in combo.items() if k != "project_slug") or "defaults" for combo in COMBINATIONS]
TARGETS = ("dev", "test", "staging", "prod")
# databricks-bundles at the pinned CLI's version (1.12.1) models jobs, pipelines, schemas,
# volumes and catalogs; the bundle's other resources (registered model, experiment) are
# checked against the pinned CLI's schema here and by the real CLI in test_real_cli.py.
RESOURCE_CLASSES = {"jobs": Job}
# Template syntax that must not survive baking: Jinja statements and comments, and any
# reference to a cookiecutter variable. Databricks job-run values ({{tasks...}}) and CI
# expressions (${{ ... }}) are meant to be there.
LEFTOVER = re.compile(r"\{%|%\}|\{#-?\s|\{\{-?\s*cookiecutter|cookiecutter\.(?!json)[a-z_]")


@pytest.fixture(scope="session")
def projects(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("matrix")
    return [bake(root / answers["project_slug"], **answers) for answers in COMBINATIONS]


@pytest.fixture(scope="session")
def packages(projects):
    """Import each generated package's local runner (they differ by slug)."""
    modules = []
    for project in projects:
        sys.path.insert(0, str(project / "src"))
        modules.append(
            (
                importlib.import_module("mlops_local.bundle"),
                importlib.import_module("mlops_local.runner"),
            )
        )
    return modules


def files(project: Path, *suffixes: str) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file() and p.suffix in suffixes)


def bundle_files(project: Path) -> list[Path]:
    return [project / "databricks.yml", *sorted((project / "resources").rglob("*.yml"))]


def task_keys(job: dict) -> list[str]:
    return [task["task_key"] for task in job["tasks"]]


def with_numeric_job_ids(resource: dict) -> dict:
    """Job IDs resolve to ``local:<key>`` locally; the deployed value is a number."""
    text = re.sub(r'"local:[a-z_]+"', "123", json.dumps(resource))
    return json.loads(text)


def test_pairwise_cover_has_every_option_value():
    from matrix import OPTIONS

    for option, values in OPTIONS.items():
        seen = {combo.get(option) for combo in COMBINATIONS}
        assert set(values) <= seen, option


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=IDS)
def test_no_template_leftovers_and_everything_parses(projects, index):
    project = projects[index]
    assert project.name == COMBINATIONS[index]["project_slug"]
    for path in sorted(p for p in project.rglob("*") if p.is_file()):
        text = path.read_text()
        match = None if path.name == ".cookiecutter-replay.json" else LEFTOVER.search(text)
        assert match is None, f"{path.relative_to(project)}: template leftover {match.group(0)!r}"
        if path.suffix in (".yml", ".yaml"):
            list(yaml.safe_load_all(text))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".py":
            ast.parse(text, filename=str(path))
        elif path.suffix == ".json":
            json.loads(text)


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=IDS)
def test_every_target_resolves_and_loads_strictly(projects, packages, index):
    project = projects[index]
    bundle_module, runner_module = packages[index]
    config = bundle_module.load_bundle(project)
    assert list(config["targets"]) == list(TARGETS)
    for target in TARGETS:
        resolved = bundle_module.resolve(config, target, user="ci@example.com")
        assert "${" not in json.dumps(resolved.config), f"{target}: unresolved reference"
        for kind, resources in resolved.resources.items():
            cls = RESOURCE_CLASSES.get(kind)
            for resource in resources.values() if cls else ():
                cls.from_dict(with_numeric_job_ids(resource))  # rejects unknown fields at any depth
        assert runner_module.check_wheel_tasks(project, resolved) > 0


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=IDS)
def test_every_path_the_bundle_names_exists(projects, packages, index):
    project = projects[index]
    bundle_module, _ = packages[index]
    config = bundle_module.load_bundle(project)
    artifacts = config["artifacts"]
    built = set()
    for name, artifact in artifacts.items():
        source = project / artifact.get("path", ".")
        assert (source / "pyproject.toml").is_file(), f"artifact {name}: no pyproject.toml in {source}"
        built.add((source / "dist").resolve())
    for target in TARGETS:
        resolved = bundle_module.resolve(config, target, user="ci@example.com")
        for key, job in resolved.jobs.items():
            dependencies = [
                dependency
                for environment in job.get("environments", [])
                for dependency in environment["spec"].get("dependencies", [])
            ]
            libraries = [lib for task in job["tasks"] for lib in task.get("libraries", [])]
            wheels = [d for d in dependencies if not d.startswith("-r ")] + [
                lib["whl"] for lib in libraries if "whl" in lib
            ]
            for wheel in wheels:
                # The paths come from var.job_libraries in databricks.yml: relative to the project folder.
                folder = (project / wheel).parent.resolve()
                assert folder in built and wheel.endswith(".whl"), f"{target}/{key}: {wheel} is not built"
            # staging and prod: the requirements file the deploy job exports into dist/ (synced), by its workspace path.
            files = [d[3:] for d in dependencies if d.startswith("-r ")]
            files += [lib["requirements"] for lib in libraries if "requirements" in lib]
            expected = [resolved.config["workspace"]["file_path"] + "/dist/requirements-jobs.txt"]
            assert sorted(set(files)) == (expected if target in ("staging", "prod") else []), (target, key, files)
            assert "dist/requirements-jobs.txt" in config["sync"]["include"]
            for task in job["tasks"]:
                for field in ("spark_python_task", "notebook_task"):
                    assert field not in task, f"{key}.{task['task_key']}: unexpected {field}"


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=IDS)
def test_options_change_the_bundle(projects, packages, index):
    """Each option's effect, checked on the resolved targets."""
    answers = {**json.loads((Path(__file__).parents[1] / "cookiecutter.json").read_text()), **COMBINATIONS[index]}
    project = projects[index]
    bundle_module, _ = packages[index]
    config = bundle_module.load_bundle(project)
    prod = bundle_module.resolve(config, "prod", user="ci@example.com")
    job = prod.jobs["batch_inference_job"]
    compute = answers["compute"] if isinstance(answers["compute"], str) else answers["compute"][0]
    if compute == "serverless":
        assert job["environments"][0]["spec"]["environment_version"] == "4"
        assert "job_clusters" not in job
    else:
        cluster = job["job_clusters"][0]["new_cluster"]
        assert cluster["spark_version"].endswith("-ml-scala2.13")
        cloud = answers["cloud"] if isinstance(answers["cloud"], str) else answers["cloud"][0]
        assert (
            cluster["node_type_id"]
            == {"azure": "Standard_D4ds_v5", "aws": "m6id.xlarge", "gcp": "n2-standard-4"}[cloud]
        )
    monitoring = answers["include_monitoring"]
    assert ("monitoring_job" in prod.jobs) == monitoring
    assert ("quality_monitor" in task_keys(job)) == monitoring
    serving = answers["include_serving_endpoint"]
    assert (project / "resources" / "model_serving.yml").exists() == serving
    for target in TARGETS:
        resolved = bundle_module.resolve(config, target, user="ci@example.com")
        for key in ("model_training_job", "model_promotion_job", "model_rollback_job"):
            if key in resolved.jobs:
                assert ("serve" in task_keys(resolved.jobs[key])) == serving, (target, key)
    assert not (project / "resources" / "after_first_run").exists()
    ci = answers["cicd_platform"] if isinstance(answers["cicd_platform"], str) else answers["cicd_platform"][0]
    assert (project / "docs" / "ci-setup.md").exists() == (ci != "none")
    assert (project / ".github").exists() == (ci == "github_actions")
    assert (project / ".gitlab-ci.yml").exists() == (ci == "gitlab")
    assert (project / ".azure").exists() == (ci == "azure_devops")


def test_bundle_files_validate_against_the_official_schema(projects, bundle_schema_path):
    paths = [str(path) for project in projects for path in bundle_files(project)]
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--schemafile", str(bundle_schema_path), *paths],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_catches_a_bad_field(tmp_path, bundle_schema_path):
    """The schema check can fail: a misspelt job field is reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text("resources:\n  jobs:\n    j:\n      name: x\n      taks: []\n")
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--schemafile", str(bundle_schema_path), str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0


def test_generated_python_passes_ruff(projects):
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run([str(BIN / "ruff"), *command, *map(str, projects)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
