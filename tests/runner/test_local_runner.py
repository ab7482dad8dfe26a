"""The local runner follows the job definition: order, conditions, outcomes, parameters.

Tests of ``src/mlops_local``, the runner every project shares: kept in the template, not in
each project. ``tests/test_local_runner.py`` runs them inside a baked project, with that
project's fixtures.
"""

import copy
import gc
import weakref

import pytest
from conftest import PROJECT_DIR
from mlops_local.bundle import BundleError, ResolvedBundle, load_bundle, resolve
from mlops_local.project import package_name
from mlops_local.runner import (
    EXCLUDED,
    FAILED,
    SUCCESS,
    UPSTREAM_FAILED,
    LocalRunner,
    TaskConfigError,
)

PACKAGE = package_name(PROJECT_DIR)


def bundle_with(jobs: dict) -> ResolvedBundle:
    resources = {"jobs": jobs}
    return ResolvedBundle("b", "dev", None, {}, {}, resources, {"resources": resources})


def condition(key, left, right, depends_on=()):
    return {
        "task_key": key,
        "depends_on": [dict(d) for d in depends_on],
        "condition_task": {"left": left, "op": "EQUAL_TO", "right": right},
    }


def test_conditions_outcomes_and_run_if(local_state):
    job = {
        "parameters": [{"name": "flag", "default": "yes"}],
        "tasks": [
            # Listed out of order on purpose: the runner sorts by depends_on.
            condition("when_true", "1", "1", [{"task_key": "check", "outcome": "true"}]),
            condition("when_false", "1", "1", [{"task_key": "check", "outcome": "false"}]),
            condition("check", "{{job.parameters.flag}}", "yes"),
            {"task_key": "child", "depends_on": [{"task_key": "when_true"}], "run_job_task": {"job_id": "local:child"}},
            {**condition("always", "1", "1", [{"task_key": "when_false"}]), "run_if": "ALL_DONE"},
        ],
    }
    child = {"tasks": [condition("inner", "a", "a")]}
    runner = LocalRunner(PROJECT_DIR, bundle_with({"parent": job, "child": child}), local_state, echo=lambda _: None)
    run = runner.run("parent")
    states = {key: task.state for key, task in run.tasks.items()}
    assert run.tasks["check"].outcome == "true"
    assert states == {
        "check": SUCCESS,
        "when_true": SUCCESS,
        "when_false": EXCLUDED,
        "child": SUCCESS,
        "always": SUCCESS,
    }
    assert runner.run("parent", {"flag": "no"}).tasks["when_true"].state == EXCLUDED
    with pytest.raises(TaskConfigError, match="has no parameter nope"):
        runner.run("parent", {"nope": "1"})


def test_before_each_task_the_garbage_is_freed_and_the_rest_frozen(local_state):
    """The runner keeps what is alive out of later garbage collections (``environment.freeze_heap``);
    what is already garbage then is freed, never kept for the rest of the run."""

    class Node:
        pass

    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle: only a collection frees it
    garbage = weakref.ref(first)
    kept = Node()
    del first, second
    job = {"tasks": [condition("check", "1", "1")]}
    runner = LocalRunner(PROJECT_DIR, bundle_with({"job": job}), local_state, echo=lambda _: None)
    gc.disable()  # no automatic collection may free the cycle first
    try:
        assert runner.run("job").succeeded
        assert garbage() is None
        assert not any(obj is kept for obj in gc.get_objects())  # frozen: no collection walks it
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_failed_task_fails_the_job_and_skips_its_dependants(local_state):
    job = {
        "tasks": [
            {"task_key": "broken", "run_job_task": {"job_id": "local:failing"}},
            condition("after", "1", "1", [{"task_key": "broken"}]),
        ]
    }
    failing = {
        "tasks": [
            {
                "task_key": "needs_champion",
                "python_wheel_task": {
                    "package_name": PACKAGE,
                    "entry_point": "deploy",
                    "named_parameters": {"catalog": "unit", "schema": "ml", "model_name": "never_trained"},
                },
            }
        ]
    }
    runner = LocalRunner(PROJECT_DIR, bundle_with({"job": job, "failing": failing}), local_state, echo=lambda _: None)
    run = runner.run("job")
    assert not run.succeeded
    assert run.tasks["broken"].state == FAILED
    assert run.tasks["after"].state == UPSTREAM_FAILED


def test_a_parameter_the_entry_point_does_not_accept_names_job_task_and_parameter(local_state):
    bundle = resolve(load_bundle(PROJECT_DIR), "dev")
    job = copy.deepcopy(bundle.job("batch_inference_job"))
    task = next(t for t in job["tasks"] if t["task_key"] == "batch_inference")
    task["python_wheel_task"]["named_parameters"]["colour"] = "blue"
    runner = LocalRunner(PROJECT_DIR, bundle_with({"batch_inference_job": job}), local_state, echo=lambda _: None)
    with pytest.raises(TaskConfigError, match="job 'batch_inference_job', task 'batch_inference'.*'colour'"):
        runner.run("batch_inference_job")


def test_an_unknown_job_run_value_names_the_parameter(local_state):
    job = {"tasks": [condition("check", "{{tasks.nowhere.values.x}}", "1")]}
    runner = LocalRunner(PROJECT_DIR, bundle_with({"job": job}), local_state, echo=lambda _: None)
    with pytest.raises(TaskConfigError, match="task 'check', parameter 'left'"):
        runner.run("job")


def test_an_unresolved_reference_fails_with_its_location():
    config = load_bundle(PROJECT_DIR)
    tasks = config["resources"]["jobs"]["batch_inference_job"]["tasks"]
    task = next(t for t in tasks if t["task_key"] == "batch_inference")
    task["python_wheel_task"]["named_parameters"]["catalog"] = "${var.not_defined}"
    where = r"batch_inference_job\.tasks\[batch_inference\]\.python_wheel_task\.named_parameters\.catalog"
    with pytest.raises(BundleError, match=where + r": \$\{var.not_defined\} does not resolve"):
        resolve(config, "dev")


def test_outside_a_project_the_runner_says_where_it_looked(tmp_path, capsys):
    from mlops_local.__main__ import main

    assert main(["--project-dir", str(tmp_path), "summary"]) == 1
    assert f"No databricks.yml in {tmp_path.resolve()} or above" in capsys.readouterr().err


def test_the_jvm_warm_up_query_runs(spark):
    """``start_spark_early`` runs it in the background, where a failure is silent: here it must
    answer its 7 groups (a query Spark refuses would warm nothing up)."""
    from mlops_local.environment import warm_up_jvm

    assert warm_up_jvm(spark) == 7


def test_a_table_is_read_with_its_stored_schema_and_an_append_adds_its_columns(spark, tmp_path):
    """A read starts no Spark job (schema inference is one per read), and a column an append
    brings is in the table afterwards, as Databricks' ``mergeSchema`` keeps it."""
    from mlops_local.environment import read_table, write_table

    name = "local.tests.appended"
    write_table(spark.createDataFrame([(1, 0.5)], "id long, x double"), tmp_path, name, "overwrite")
    write_table(spark.createDataFrame([(2, 1.5, "new")], "id long, x double, y string"), tmp_path, name, "append")
    write_table(spark.createDataFrame([(3, 2.5)], "id long, x double"), tmp_path, name, "append")

    spark.sparkContext.setJobGroup("read-only", "reading a table")
    try:
        table = read_table(spark, tmp_path, name)
        assert spark.sparkContext.statusTracker().getJobIdsForGroup("read-only") == []
    finally:
        spark.sparkContext.setJobGroup("", "")
    assert table.columns == ["id", "x", "y"]
    assert sorted(tuple(row) for row in table.collect()) == [(1, 0.5, None), (2, 1.5, "new"), (3, 2.5, None)]


def test_an_append_to_a_table_written_without_a_stored_schema_keeps_its_columns(spark, tmp_path):
    """Local state made before tables kept their schema: the first append starts from the
    schema Spark infers for it, so no column of the table is lost to later reads."""
    from mlops_local.environment import read_table, table_path, write_table

    name = "local.tests.older"
    spark.createDataFrame([(1, 0.5, "kept")], "id long, x double, y string").write.parquet(
        str(table_path(tmp_path, name))
    )
    write_table(spark.createDataFrame([(2, 1.5)], "id long, x double"), tmp_path, name, "append")
    assert read_table(spark, tmp_path, name).columns == ["id", "x", "y"]
