"""The fake workspace runs the code the CLI deployed, and refuses what Databricks refuses.

Job runs go through the real CLI (`bundle run`) against clitest/: the Jobs service's part
(task order, run_if, dynamic values, task values) is the fake's, every python_wheel_task runs
the wheel the CLI uploaded (clitest/jobworker.py), and what is read back afterwards (model
versions, aliases, MLflow runs, the serving endpoint) is what that code wrote. Each broken input
below is one a real workspace refuses or fails on; before the fake ran job code, every one of
them deployed and "ran" successfully.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from realcli import SERVICE_PRINCIPAL, USER, commit_all, pointed_at_fake

SLUG = "fake_runs"


@pytest.fixture
def project(baked, cli, tmp_path) -> Path:
    """The default bake with the serving endpoint, pointed at the fake and committed."""
    project = pointed_at_fake(baked(project_slug=SLUG, include_serving_endpoint=True), cli.fake.url, tmp_path / "p")
    cli.prepare(project)
    return project


def edit(project: Path, relative: str, change) -> None:
    path = project / relative
    path.write_text(change(path.read_text()))
    commit_all(project, f"edit {relative}")


def training_model(cli, project: Path, target: str = "dev", identity: str = USER) -> str:
    summary = cli.json(["bundle", "summary", "-t", target], project, identity)
    return summary["resources"]["registered_models"]["model"]["id"]


def run_training(cli, project: Path):
    cli.run(["bundle", "deploy", "-t", "dev"], project)
    return cli.run(["bundle", "run", "model_training_job", "-t", "dev"], project, check=False)


# --- What a training run leaves is what the job code wrote ----------------------------------


def test_a_training_run_in_dev_leaves_what_the_job_code_wrote(project, cli):
    result = run_training(cli, project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TERMINATED SUCCESS" in result.stdout + result.stderr
    model = training_model(cli, project)

    versions = cli.json(["model-versions", "list", model], project)
    assert [v["version"] for v in versions] == [1], versions
    champion = cli.json(["model-versions", "get-by-alias", model, "champion"], project)
    assert champion["version"] == 1 and champion["run_id"] == versions[0]["run_id"]
    run = cli.json(["experiments", "get-run", champion["run_id"]], project)["run"]
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    # The metrics and tags train.py logged: the model's own metric names, and where it came from.
    assert metrics and all(isinstance(v, float) for v in metrics.values()), metrics
    assert tags["target"] == "dev" and re.fullmatch(r"[0-9a-f]{40}", tags["git_commit"]), tags
    assert tags["job_run_id"].isdigit(), tags
    # The serve task created the endpoint the job code described, serving the champion.
    endpoint = cli.json(["serving-endpoints", "get", f"{model.split('.')[-1]}-dev"], project)
    served = endpoint["config"]["served_entities"][0]
    assert (served["entity_name"], served["entity_version"]) == (model, "1"), served
    # The run output of each task is the code's own output.
    run_id = re.search(r"/runs/(\d+)", result.stdout + result.stderr).group(1)
    tasks = {t["task_key"]: t for t in cli.json(["jobs", "get-run", run_id], project)["tasks"]}
    assert set(tasks) == {"train", "validate", "deploy", "serve"}
    assert all(t["state"]["result_state"] == "SUCCESS" for t in tasks.values()), tasks
    output = cli.json(["jobs", "get-run-output", str(tasks["deploy"]["run_id"])], project)
    assert "champion is now v1" in output["logs"], output


# --- include_feature_store: the feature pipeline, then training on its tables ---------------

FEATURE_TABLES = ("trip_features", "pickup_zip_features")


def task_outputs(cli, project: Path, result) -> dict[str, dict]:
    """Each task of the run ``bundle run`` printed, with its state and run output."""
    run_id = re.search(r"/runs/(\d+)", result.stdout + result.stderr).group(1)
    tasks = cli.json(["jobs", "get-run", run_id], project)["tasks"]
    return {
        t["task_key"]: {"state": t["state"], **cli.json(["jobs", "get-run-output", str(t["run_id"])], project)}
        for t in tasks
    }


def test_the_feature_job_then_training_run_on_the_feature_tables(baked, cli, tmp_path):
    slug = "fake_features"
    answers = {"include_feature_store": True, "include_serving_endpoint": True}
    project = pointed_at_fake(baked(project_slug=slug, **answers), cli.fake.url, tmp_path / "p")
    cli.prepare(project)
    cli.run(["bundle", "deploy", "-t", "dev"], project)
    tables = [f"dev.{slug}.{name}" for name in FEATURE_TABLES]
    for table in tables:  # nothing before the first run: the job creates them
        missing = cli.run(["tables", "get", table], project, check=False)
        assert missing.returncode != 0, missing.stdout

    result = cli.run(["bundle", "run", "feature_engineering_job", "-t", "dev"], project, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = task_outputs(cli, project, result)
    assert list(outputs) == ["features"]
    for table in tables:  # the job code created and merged each table, in the target's catalog,
        assert cli.json(["tables", "get", table], project)["full_name"] == table
        # and published it to the online store the serving endpoint looks features up in.
        assert cli.json(["tables", "get", f"{table}_online"], project)["full_name"] == f"{table}_online"
        assert (
            f"Published the feature table {table} to {table}_online in the online store " in outputs["features"]["logs"]
        )
        assert re.search(
            rf"Merged [1-9]\d* rows of .* into the feature table {re.escape(table)}\n", outputs["features"]["logs"]
        ), outputs["features"]["logs"]

    result = cli.run(["bundle", "run", "model_training_job", "-t", "dev"], project, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = task_outputs(cli, project, result)
    assert all(o["state"]["result_state"] == "SUCCESS" for o in outputs.values()), outputs
    assert set(outputs) == {"features", "train", "validate", "deploy", "serve"}
    model = training_model(cli, project)
    champion = cli.json(["model-versions", "get-by-alias", model, "champion"], project)
    assert champion["version"] == 1
    # The version train.py logged with fe.log_model: its feature spec names dev's own tables.
    run = cli.json(["experiments", "get-run", champion["run_id"]], project)["run"]
    specs = list(Path(run["info"]["artifact_uri"].removeprefix("file://")).parents[1].rglob("feature_spec.yaml"))
    specs = specs or list(Path(champion["source"].removeprefix("file://")).rglob("feature_spec.yaml"))
    assert len(specs) == 1, (run["info"]["artifact_uri"], champion["source"])
    spec = yaml.safe_load(specs[0].read_text())
    assert spec["tables"] == sorted(tables), spec
    assert all(lookup["timestamp_lookup_key"] for lookup in spec["lookups"]), spec


# --- Broken job code fails the run, and what follows does not run ----------------------------


BROKEN_CODE = {
    "a raising entry point": (
        f"src/{SLUG}/train.py",
        lambda text: text + '\n\ndef main(argv=None):\n    raise RuntimeError("the training code is broken")\n',
        "RuntimeError: the training code is broken",
    ),
    "an entry point missing from the wheel": (
        "pyproject.toml",
        lambda text: re.sub(r"^train = .*\n", "", text, flags=re.M),
        "entry point 'train'",
    ),
    "a client version no release meets": (
        "pyproject.toml",
        lambda text: text.replace(
            '"databricks-sdk>=', '"databricks-feature-engineering>=0.19",\n    "databricks-sdk>=', 1
        ),
        "databricks-feature-engineering>=0.19 (not installed; releases the library installation may pick: 0.12.1",
    ),
    "a package the wheel lacks": (
        "resources/model_training_job.yml",
        lambda text: text.replace(f"package_name: {SLUG}", "package_name: not_this_package", 1),
        "No module named 'not_this_package'",
    ),
}


@pytest.mark.parametrize("broken", BROKEN_CODE)
def test_broken_job_code_fails_the_run(project, cli, broken):
    relative, change, error = BROKEN_CODE[broken]
    edit(project, relative, change)
    result = run_training(cli, project)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert "Task train failed" in text and error in text, text
    # Databricks skips what depends on a failed task: nothing was validated, deployed or served.
    run_id = re.search(r"/runs/(\d+)", text).group(1)
    states = {
        t["task_key"]: t["state"]["result_state"] for t in cli.json(["jobs", "get-run", run_id], project)["tasks"]
    }
    assert states == {
        "train": "FAILED",
        "validate": "UPSTREAM_FAILED",
        "deploy": "UPSTREAM_FAILED",
        "serve": "UPSTREAM_FAILED",
    }, states
    assert cli.json(["model-versions", "list", training_model(cli, project)], project) in ([], None)


# --- The service's refusals at deploy -------------------------------------------------------


def bundle_edit(project: Path, relative: str, change) -> None:
    def rewrite(text: str) -> str:
        config = yaml.safe_load(text)
        change(config)
        return yaml.safe_dump(config, sort_keys=False)

    edit(project, relative, rewrite)


def training_tasks(config: dict) -> list[dict]:
    return config["targets"]["dev"]["resources"]["jobs"]["model_training_job"]["tasks"]


def model_grants(config: dict) -> list[dict]:
    return config["resources"]["registered_models"]["model"]["grants"]


REFUSED = {
    "a depends_on naming a missing task": (
        "resources/model_training_job.yml",
        lambda c: training_tasks(c)[1]["depends_on"].append({"task_key": "no_such_task"}),
        "depends on 'no_such_task' which is not found",
    ),
    "a model grant to the workspace-local users group": (
        "resources/ml_artifacts.yml",
        lambda c: model_grants(c).append({"principal": "users", "privileges": ["EXECUTE"]}),
        "Could not find principal with name users",
    ),
    "a privilege that does not apply to a model": (
        "resources/ml_artifacts.yml",
        lambda c: model_grants(c).append({"principal": "account users", "privileges": ["SELECT"]}),
        "Privilege SELECT is not applicable",
    ),
    "a model name Unity Catalog refuses": (
        "databricks.yml",
        lambda c: c["variables"]["model_name"].update(default="fares/v2"),
        "Invalid model name",
    ),
    "an experiment whose folder does not exist": (
        "databricks.yml",
        lambda c: c["variables"]["experiment_name"].update(default="/Workspace/Users/nobody/experiments/fares"),
        "Parent directory /Workspace/Users/nobody/experiments does not exist",
    ),
}


@pytest.mark.parametrize("broken", REFUSED)
def test_the_fake_refuses_what_the_workspace_refuses(project, cli, broken):
    relative, change, error = REFUSED[broken]
    bundle_edit(project, relative, change)
    result = cli.run(["bundle", "deploy", "-t", "dev"], project, check=False)
    assert result.returncode != 0 and error in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_model_in_a_schema_that_does_not_exist_is_refused(baked, cli, tmp_path):
    project = pointed_at_fake(baked(project_slug=SLUG), cli.fake.url, tmp_path / "p")  # no cli.prepare
    result = cli.run(["bundle", "deploy", "-t", "dev"], project, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and f"Schema 'dev.{SLUG}' does not exist" in text, text


def test_a_run_as_principal_the_workspace_does_not_know_is_refused(baked, cli, tmp_path):
    project = pointed_at_fake(baked(project_slug=SLUG), cli.fake.url, tmp_path / "p")
    cli.prepare(project)
    result = cli.run(
        ["bundle", "deploy", "-t", "staging"],
        project,
        SERVICE_PRINCIPAL,
        check=False,
        BUNDLE_VAR_service_principal="00000000-0000-4000-8000-000000000000",
    )
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "00000000-0000-4000-8000-000000000000 does not exist" in text, text


# --- make fake ------------------------------------------------------------------------------


def test_make_fake_serves_until_sigterm_and_removes_its_state(real_cli, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import urllib.request

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        ["make", "-s", "fake"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, process.stderr.read() if process.poll() else "")
        request = urllib.request.Request(
            url + "/api/2.0/preview/scim/v2/Me", headers={"Authorization": "Bearer dbapi0makefake"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["userName"] == "tester@databricks.com"
        assert list(tmp_path.glob("fakeworkspace-state-*")), "the fake keeps its state in TMPDIR"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)  # make itself ends by the signal; the fake cleans up first
    log = process.stderr.read()
    assert "failed in the fake workspace" not in log, log
    import time

    deadline = time.monotonic() + 60  # the fake stops its workers, then removes its state
    while list(tmp_path.glob("fakeworkspace-state-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(tmp_path.glob("fakeworkspace-state-*")), "SIGTERM leaves no state behind"
