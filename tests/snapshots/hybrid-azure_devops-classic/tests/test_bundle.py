"""The bundle as each target resolves it: layout, names, references, task parameters."""

import re

import pytest
from conftest import PROJECT_DIR
from mlops_local.bundle import BundleError, load_bundle, resolve
from mlops_local.rules import check
from mlops_local.runner import check_wheel_tasks

TARGETS = ("dev", "test", "staging", "prod")
# Which targets of this project define the training and the promotion job.
LAYOUT = {
    "model_training_job": ("dev", "test", "staging"),
    "model_promotion_job": ("prod",),
}


@pytest.fixture(scope="module")
def config():
    return load_bundle(PROJECT_DIR)


@pytest.fixture(scope="module")
def bundles(config):
    return {target: resolve(config, target, user="alice@example.com") for target in TARGETS}


def test_targets_and_modes(config, bundles):
    assert tuple(config["targets"]) == TARGETS
    assert bundles["dev"].mode == "development"
    assert bundles["staging"].mode == bundles["prod"].mode == "production"
    for target in ("test", "staging", "prod"):
        assert "run_as" not in config["targets"][target]  # each job has its own run_as
        principal = bundles[target].variables["service_principal"]
        assert bundles[target].workspace["root_path"].startswith(f"/Workspace/Users/{principal}/.bundle/")
    catalogs = [bundles[t].variables["catalog"] for t in TARGETS]
    assert len(set(catalogs)) == len(catalogs)


@pytest.mark.parametrize("job", ["model_training_job", "model_promotion_job"])
def test_pattern_layout(bundles, job):
    expected = LAYOUT[job]
    assert tuple(t for t in TARGETS if job in bundles[t].jobs) == expected


def test_inference_and_monitoring_reach_staging_and_prod(bundles):
    for target in ("staging", "prod"):
        assert "batch_inference_job" in bundles[target].jobs


def test_development_mode_prefixes_the_names_the_jobs_receive(bundles):
    dev, prod = bundles["dev"], bundles["prod"]
    model = dev.resources["registered_models"]["model"]["name"]
    assert model.startswith("dev_alice_")
    assert prod.resources["registered_models"]["model"]["name"] == prod.variables["model_name"]
    for bundle in (dev, prod):
        name = bundle.resources["registered_models"]["model"]["name"]
        experiment = bundle.resources["experiments"]["experiment"]["name"]
        for job_key, job in bundle.jobs.items():
            for task in job["tasks"]:
                named = task.get("python_wheel_task", {}).get("named_parameters", {})
                if "model_name" in named:
                    assert named["model_name"] == name, (job_key, task["task_key"])
                if "experiment_name" in named:
                    assert named["experiment_name"] == experiment
    assert all(job["name"].startswith("[dev alice] ") for job in dev.jobs.values())
    for key in ("schedule", "trigger"):
        assert all(job[key]["pause_status"] == "PAUSED" for job in dev.jobs.values() if key in job), key


def test_every_task_parameter_is_accepted_by_its_entry_point(bundles):
    assert sum(check_wheel_tasks(PROJECT_DIR, bundle) for bundle in bundles.values()) > 0


def test_no_reference_is_left_unresolved(bundles):
    import json

    for bundle in bundles.values():
        assert "${" not in json.dumps(bundle.config)


def test_monitoring_retrains_only_where_training_exists(bundles):
    for bundle in bundles.values():
        job = bundle.jobs.get("monitoring_job")
        if job is None:
            continue
        tasks = {task["task_key"]: task for task in job["tasks"]}
        if "model_training_job" in bundle.jobs:
            assert tasks["retrain"]["run_job_task"]["job_id"] == "local:model_training_job"
        else:
            assert "retrain" not in tasks and "retraining_needed" in tasks


def test_errors_name_the_problem(config):
    with pytest.raises(BundleError, match="Unknown target 'qa'"):
        resolve(config, "qa")
    with pytest.raises(BundleError, match="no such variable"):
        resolve(config, "dev", {"no_such_variable": "x"})


def test_no_deploy_time_rule_is_broken(bundles):
    """The CLI's deploy-time rules (mlops_local/rules.py), as `bundle validate --strict` and deploy apply them."""
    findings = check(bundles)
    assert findings == [], "\n".join(map(str, findings))


CHAMPION_MOVERS = ("model_training_job", "model_promotion_job", "model_rollback_job")


def _wheel_tasks(job):
    return {task["task_key"]: task["python_wheel_task"] for task in job["tasks"] if "python_wheel_task" in task}


def test_every_change_of_champion_is_followed_by_serve_or_none_is(bundles):
    """Serving on: a serve task after deploy/rollback in every job that moves champion; off: none."""
    movers = [(t, k, bundles[t].jobs[k]) for t in TARGETS for k in CHAMPION_MOVERS if k in bundles[t].jobs]
    serving = [("serve" in _wheel_tasks(job)) for _, _, job in movers]
    assert all(serving) or not any(serving), movers
    if not any(serving):
        return
    for target, key, job in movers:
        serve = next(task for task in job["tasks"] if task["task_key"] == "serve")
        moved_by = "rollback" if key == "model_rollback_job" else "deploy"
        assert [dep["task_key"] for dep in serve["depends_on"]] == [moved_by], (target, key)
        named = serve["python_wheel_task"]["named_parameters"]
        model = bundles[target].resources["registered_models"]["model"]["name"]
        assert named["endpoint_name"] == f"{model}-{target}"  # the dev prefix reaches the endpoint name
        assert named["scale_to_zero"] == ("false" if target == "prod" else "true")


def test_the_quality_monitor_follows_scoring_and_is_paused_where_schedules_are(bundles):
    for target, bundle in bundles.items():
        tasks = _wheel_tasks(bundle.jobs["batch_inference_job"])
        if "quality_monitor" not in tasks:
            assert "monitoring_job" not in bundle.jobs
            continue
        job = bundle.jobs["batch_inference_job"]
        monitor = next(task for task in job["tasks"] if task["task_key"] == "quality_monitor")
        assert [dep["task_key"] for dep in monitor["depends_on"]] == ["batch_inference"]
        paused = job["schedule"].get("pause_status") == "PAUSED"
        assert (tasks["quality_monitor"]["named_parameters"]["pause_status"] == "PAUSED") == paused, target


def _job_value(job, value: str) -> str:
    """``value`` with a ``{{job.parameters.<name>}}`` reference replaced by that parameter's default."""
    match = re.fullmatch(r"\{\{job\.parameters\.(\w+)\}\}", value)
    if match is None:
        return value
    return next(str(p["default"]) for p in job["parameters"] if p["name"] == match.group(1))


def test_the_validation_gate_reports_in_dev_and_enforces_elsewhere(bundles):
    """Experiments in dev are not blocked by production thresholds; test, staging and prod refuse a worse model."""
    checked = 0
    for target, bundle in bundles.items():
        for key in ("model_training_job", "model_promotion_job"):
            job = bundle.jobs.get(key)
            if job is None:
                continue
            mode = _job_value(job, _wheel_tasks(job)["validate"]["named_parameters"]["mode"])
            assert mode == ("report" if target == "dev" else "enforce"), (target, key)
            assert "validation_mode" in {p["name"] for p in job["parameters"]}, (target, key)  # run --param
            checked += 1
    assert checked >= 3  # dev trains in every pattern; staging and prod train or promote
