"""Speed figures of the generated project on this machine: what `make bench` prints.

    python tools/bench.py [--repeat 3] [--rows 1000000] [--quick] [--no-feature-store]

Every figure is a wall time, printed next to its ratio to the Spark floor measured in
the same run: a bare local Spark session (``local[2]``, no settings) started in a fresh
process that runs one tiny job. Ratios hold on any machine; the goals are ratios.

- the floor, measured before and after the other figures (the machine may be shared);
- the project's own Spark session start (a fresh process each time);
- the local scenario (``python -m mlops_local scenario``, fresh state, fresh process):
  total wall time and each job's time;
- batch-inference throughput at --rows rows: the job's scoring path (``spark_udf``) next to
  the same model's plain pandas ``predict`` on the same rows, and their ratio;
- the newcomer path of the generated README: ``uv sync`` (uv's cache warm, as after any
  first project on a machine), then the project's test suite run as the README says,
  ``uv run pytest``, in full and the quick loop ``uv run pytest -m "not slow"``, each with
  where its time went (tools/bench_phases.py: start, collection, each test file, CPU time per
  process); the same for a bake with ``include_feature_store`` (skipped with
  --no-feature-store; all suites are skipped with --quick);
- serving latency (``serving_latency``): the same model behind MLflow's scoring server
  (``mlflow models serve --env-manager local``, as the local scenario serves the champion),
  p50 and p95 over 200 single-row requests and the throughput of 1,000-row batches, next
  to in-process ``predict`` on the same rows, and their ratios.

The local cache (sample table, empty registry) is filled once before the timed runs, as
it is on any machine after the first run. Figures are medians over --repeat runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from bake import TEMPLATE_DIR, project_env, rebake
from wheelhouse import uv_find_links

JOB_LINE = re.compile(r"^=== (\w+) \[(\w+)\] succeeded in ([0-9.]+)s", re.MULTILINE)
FLOOR_CODE = (
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.master('local[2]').getOrCreate()\n"
    "spark.range(1).count()\n"
    "spark.stop()\n"
)
# Goals, as ratios to the floor.
GOALS = {"pytest": 4.0, "quick": 1.5, "scenario": 2.0}
TOOLS_DIR = Path(__file__).resolve().parent


def median(values: list[float]) -> float:
    return statistics.median(values)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - started, result


def check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        sys.exit(f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def spark_floor(repeat: int) -> list[float]:
    """The floor: a bare local Spark session, one tiny job, in a fresh process (wall time)."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    times = []
    for _ in range(repeat):
        seconds, result = timed([sys.executable, "-c", FLOOR_CODE], env=env)
        check(result, "bare Spark session")
        times.append(seconds)
    print(f"  floor: {', '.join(f'{t:.1f}s' for t in times)}", flush=True)
    return times


def warm_cache(project: Path, state: Path) -> float:
    """Fill the local cache (stand-in table, empty registry) as any first run does; not a figure."""
    code = (
        f"from {project.name}.runtime import configure_mlflow, get_spark, read_table\n"
        f"from {project.name}.model import SOURCE_TABLE\n"
        "configure_mlflow(); read_table(get_spark(), SOURCE_TABLE)\n"
    )
    seconds, result = timed([sys.executable, "-c", code], env=project_env(project, state))
    check(result, "filling the local cache")
    return seconds


def spark_start(project: Path, state: Path, repeat: int) -> list[float]:
    """The project's local Spark session (runtime.get_spark) and one tiny job, in a fresh process."""
    code = f"from {project.name}.runtime import get_spark\nget_spark().range(1).count()\n"
    times = []
    for _ in range(repeat):
        seconds, result = timed([sys.executable, "-c", code], env=project_env(project, state))
        check(result, "project Spark session")
        times.append(seconds)
    return times


def scenario(project: Path, state: Path, repeat: int) -> tuple[list[float], dict[str, list[float]]]:
    """`python -m mlops_local scenario` from a fresh state, in a fresh process (what `make demo` runs)."""
    totals, jobs = [], defaultdict(list)
    env = project_env(project, state)
    for i in range(repeat):
        subprocess.run(
            [sys.executable, "-m", "mlops_local", "reset"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        seconds, out = timed([sys.executable, "-m", "mlops_local", "scenario"], cwd=project, env=env)
        check(out, "scenario")
        totals.append(seconds)
        for job, target, job_seconds in JOB_LINE.findall(out.stdout):
            jobs[f"{job} [{target}]"].append(float(job_seconds))
        print(f"  scenario run {i + 1}/{repeat}: {seconds:.1f}s", flush=True)
    return totals, jobs


UV = Path(sys.executable).with_name("uv")
# What the template's interpreter sets for its own runs, kept away from `uv run`.
TEMPLATE_ONLY = ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV", "MLOPS_LOCAL_DIR")


def uv_env() -> dict[str, str]:
    """The project's environment: nothing of the template's, and PySpark's wheel built once
    (tools/wheelhouse.py), as uv's own cache gives it on a machine whose index it can reuse."""
    return uv_find_links({key: value for key, value in os.environ.items() if key not in TEMPLATE_ONLY})


def uv_sync(project: Path) -> float:
    """The README's first step, ``uv sync --compile-bytecode`` in a fresh git repository, with uv's cache as it is."""
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    seconds, result = timed([str(UV), "sync", "--compile-bytecode"], cwd=project, env=uv_env())
    check(result, "uv sync")
    return seconds


def test_suite(project: Path, repeat: int, marker: str | None = None) -> tuple[list[float], list[dict]]:
    """The generated project's pytest as its README runs it (``uv run pytest``, all tests or ``-m marker``).

    Returns the wall times and, per run, where the time went (tools/bench_phases.py).
    """
    command = [str(UV), "run", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_phases"]
    if marker:
        command += ["-m", marker]
    times, phases = [], []
    for i in range(repeat):
        report = project.parent / "bench-phases.json"
        env = {**uv_env(), "PYTHONPATH": str(TOOLS_DIR), "BENCH_PHASES": str(report), "BENCH_T0": repr(time.time())}
        seconds, out = timed(command, cwd=project, env=env)
        check(out, f"generated test suite ({' '.join(command[3:])})")
        times.append(seconds)
        phases.append(json.loads(report.read_text()))
        summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        selected = f" -m {marker!r}" if marker else ""
        print(f"  uv run pytest{selected} run {i + 1}/{repeat}: {seconds:.1f}s ({summary})", flush=True)
    return times, phases


def print_phases(runs: list[dict], wall: list[float], floor: float) -> None:
    """Where a suite's wall time went, medians over the runs, each with its ratio to the floor."""

    def line(name: str, values: list[float]) -> str:
        value = median(values)
        return f"    {name:<44} {value:6.1f} s  {value / floor:5.2f}x floor"

    print(line("uv run, Python and pytest start", [r["phases"]["start"] for r in runs]))
    print(line("collection (imports; Spark starts meanwhile)", [r["phases"]["collect"] for r in runs]))
    print(line("tests", [r["phases"]["tests"] for r in runs]))
    files = sorted({name for r in runs for name in r["files"]})
    for name in sorted(files, key=lambda n: -median([sum(r["files"].get(n, {}).values()) for r in runs])):
        setup = median([r["files"].get(name, {}).get("setup", 0.0) for r in runs])
        call = median([r["files"].get(name, {}).get("call", 0.0) for r in runs])
        print(f"      {name:<42} {setup + call:6.1f} s  (fixtures {setup:.1f} s, tests {call:.1f} s)")
    names = {name for r in runs for name in r.get("cpu", {})}
    cpu = {name: median([r.get("cpu", {}).get(name, 0.0) for r in runs]) for name in names}
    if cpu:
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(cpu.items(), key=lambda i: -i[1]))
        cores = os.cpu_count() or 1
        capacity = median(wall) * cores
        print(f"    CPU time {sum(cpu.values()):.1f} s of {capacity:.0f} s (wall x {cores} cores): {parts}")
    # The rest of the wall time: the end of the session, the interpreter's exit, uv's.
    ends = [seconds - sum(r["phases"].values()) + r["phases"]["finish"] for r, seconds in zip(runs, wall, strict=True)]
    print(line("session end and exit", ends))


def throughput(project: Path, state: Path, rows: int, repeat: int) -> dict[str, list[float]]:
    """Scoring ``rows`` stand-in rows through spark_udf and through pandas predict, in this process."""
    os.environ["MLOPS_LOCAL_DIR"] = str(state)
    os.environ["MLOPS_LOCAL_PROJECT"] = str(project)  # its stand_in.py makes the source table
    os.environ["PYSPARK_PYTHON"] = sys.executable
    sys.path[:0] = [str(project / "src"), str(project)]  # the job package, and stand_in.py beside databricks.yml
    import mlflow
    import stand_in

    def module(name: str):
        return importlib.import_module(f"{project.name}.{name}")

    runtime, problem, names, train, batch_inference = map(
        module, ("runtime", "model", "names", "train", "batch_inference")
    )

    spark = runtime.get_spark()
    runtime.configure_mlflow()
    model = names.ModelRef("bench", "ml", "fares")
    args = [f"--catalog={model.catalog}", f"--schema={model.schema}", f"--model_name={model.name}"]
    version = train.main([*args, "--experiment_name=/bench", "--training_end_date=2016-02-14"])
    scored = problem.add_features(stand_in.trips(spark, rows=rows, seed=5)).cache()
    assert scored.count() == rows
    features = scored.select(*problem.FEATURES).toPandas()
    pyfunc = mlflow.pyfunc.load_model(model.uri(version))

    results = defaultdict(list)
    for i in range(repeat):
        started = time.perf_counter()
        batch_inference.score(scored, model, version).write.format("noop").mode("overwrite").save()
        results["spark_udf"].append(time.perf_counter() - started)
        started = time.perf_counter()
        predictions = pyfunc.predict(features)
        results["pandas"].append(time.perf_counter() - started)
        assert len(predictions) == rows
        print(
            f"  scoring run {i + 1}/{repeat}: spark_udf {results['spark_udf'][-1]:.2f}s, "
            f"pandas {results['pandas'][-1]:.2f}s",
            flush=True,
        )
    scored.unpersist()
    return results


def figure(name: str, seconds: list[float], floor: float, goal: float | None = None) -> str:
    """One result line: median wall time, ratio to the floor, and the goal when there is one."""
    value = median(seconds)
    ratio = value / floor
    verdict = ""
    if goal is not None:
        verdict = f"   goal <= {goal:g}x: {'met' if ratio <= goal else 'NOT MET'}"
    return f"  {name:<40} {value:7.1f} s  {ratio:5.2f}x floor{verdict}  ({len(seconds)} runs)"


def template_scoring_server():
    """The local runner's scoring server as projects with a serving endpoint have it.

    The benchmark project has the default answers, which leave ``scoring_server.py`` out of
    its ``src/mlops_local``; the template's copy is the same file (``src/*`` is not rendered).
    """
    import importlib.util

    path = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "src" / "mlops_local" / "scoring_server.py"
    importlib.import_module("mlops_local")
    spec = importlib.util.spec_from_file_location("mlops_local.scoring_server", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def serving_latency(project: Path, state: Path, singles: int = 200, batch_rows: int = 1000, batches: int = 20) -> dict:
    """Latency and batch throughput of a model behind ``mlflow models serve`` against in-process predict.

    Trains (or reuses) the bench model in ``state``, so it can run on its own or after ``throughput``.
    """
    import json

    os.environ["MLOPS_LOCAL_DIR"] = str(state)
    os.environ["MLOPS_LOCAL_PROJECT"] = str(project)  # its stand_in.py makes the source table
    os.environ["PYSPARK_PYTHON"] = sys.executable
    if str(project / "src") not in sys.path:
        sys.path[:0] = [str(project / "src"), str(project)]  # the job package, and stand_in.py beside databricks.yml
    import mlflow
    import requests
    import stand_in

    def module(name: str):
        return importlib.import_module(f"{project.name}.{name}")

    runtime, problem, names, train = map(module, ("runtime", "model", "names", "train"))
    scoring_server = template_scoring_server()
    runtime.configure_mlflow()
    model = names.ModelRef("bench", "ml", "fares")
    client = mlflow.tracking.MlflowClient()
    versions = client.search_model_versions(f"name='{model.full_name}'")  # none: the model is not there yet
    if versions:
        version = str(max(int(v.version) for v in versions))
    else:
        args = [f"--catalog={model.catalog}", f"--schema={model.schema}", f"--model_name={model.name}"]
        version = train.main([*args, "--experiment_name=/bench", "--training_end_date=2016-02-14"])
    uri = model.uri(version)
    spark = runtime.get_spark()
    sample = problem.add_features(stand_in.trips(spark, rows=batch_rows, seed=11))
    rows = sample.select(*problem.FEATURES).toPandas()
    pyfunc = mlflow.pyfunc.load_model(uri)
    rows = rows.astype({spec.name: spec.type.to_numpy() for spec in pyfunc.metadata.get_input_schema().inputs})

    def payload(frame) -> str:
        return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})

    single_payloads = [payload(rows.iloc[[i % len(rows)]]) for i in range(singles)]
    batch_payload = payload(rows)
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    served_single, served_batch, local_single, local_batch = [], [], [], []
    with scoring_server.scoring_server(uri) as url:
        for body in single_payloads[:10]:  # warm-up
            session.post(f"{url}/invocations", data=body, headers=headers).raise_for_status()
        for body in single_payloads:
            started = time.perf_counter()
            session.post(f"{url}/invocations", data=body, headers=headers).raise_for_status()
            served_single.append(time.perf_counter() - started)
        for _ in range(batches):
            started = time.perf_counter()
            answer = session.post(f"{url}/invocations", data=batch_payload, headers=headers)
            answer.raise_for_status()
            served_batch.append(time.perf_counter() - started)
            assert len(answer.json()["predictions"]) == batch_rows
    for i in range(singles):
        row = rows.iloc[[i % len(rows)]]
        started = time.perf_counter()
        pyfunc.predict(row)
        local_single.append(time.perf_counter() - started)
    for _ in range(batches):
        started = time.perf_counter()
        pyfunc.predict(rows)
        local_batch.append(time.perf_counter() - started)

    def percentile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "singles": singles,
        "batch_rows": batch_rows,
        "served_p50": percentile(served_single, 0.5),
        "served_p95": percentile(served_single, 0.95),
        "local_p50": percentile(local_single, 0.5),
        "local_p95": percentile(local_single, 0.95),
        "served_rows_per_s": batch_rows / median(served_batch),
        "local_rows_per_s": batch_rows / median(local_batch),
    }


def print_serving(figures: dict) -> None:
    ms = 1000
    print(f"  serving, {figures['singles']} single-row requests (mlflow models serve, local)")
    print(
        f"    p50 {figures['served_p50'] * ms:7.1f} ms, p95 {figures['served_p95'] * ms:7.1f} ms   "
        f"in-process predict p50 {figures['local_p50'] * ms:.1f} ms, p95 {figures['local_p95'] * ms:.1f} ms"
    )
    print(
        f"    p50 served / in-process        {figures['served_p50'] / figures['local_p50']:7.1f} x   "
        f"(HTTP, JSON and schema checks per request)"
    )
    print(
        f"  serving, {figures['batch_rows']:,}-row batches          {figures['served_rows_per_s']:>10,.0f} rows/s   "
        f"in-process {figures['local_rows_per_s']:,.0f} rows/s "
        f"({figures['local_rows_per_s'] / figures['served_rows_per_s']:.1f} x faster)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="skip the generated test suites")
    parser.add_argument(
        "--no-feature-store", action="store_true", help="skip the suites of the bake with include_feature_store"
    )
    args = parser.parse_args()

    project = rebake(args.build_dir / "bench", project_slug="bench_project")
    state = (args.build_dir / "bench-state").resolve()
    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}")
    print(f"Project: {project} (defaults, deploy_code); medians of {args.repeat} runs\n")

    print("Spark floor (bare session + one tiny job, fresh process)...", flush=True)
    floors = spark_floor(args.repeat)
    print(f"Filling the local cache: {warm_cache(project, state / 'warm'):.1f}s (first run on a machine only)")
    print("Project Spark session start...", flush=True)
    starts = spark_start(project, state / "start", args.repeat)
    print("Local scenario (fresh process and state each run)...", flush=True)
    totals, jobs = scenario(project, state / "scenario", args.repeat)
    print("uv sync (the generated README's first step)...", flush=True)
    synced = uv_sync(project)
    suite = quick = None
    if not args.quick:
        print("Generated test suite (uv run pytest)...", flush=True)
        suite, suite_phases = test_suite(project, args.repeat)
        quick, quick_phases = test_suite(project, args.repeat, marker="not slow")
    fs_suite = fs_quick = None
    if not args.quick and not args.no_feature_store:
        print("Generated test suite of a bake with include_feature_store (uv sync, uv run pytest)...", flush=True)
        fs_project = rebake(args.build_dir / "bench-fs", project_slug="bench_fs_project", include_feature_store=True)
        uv_sync(fs_project)
        fs_suite, fs_suite_phases = test_suite(fs_project, args.repeat)
        fs_quick, fs_quick_phases = test_suite(fs_project, args.repeat, marker="not slow")
    print("Spark floor again...", flush=True)
    floors += spark_floor(args.repeat)
    print(f"Batch-inference throughput at {args.rows:,} rows...", flush=True)
    scoring = throughput(project, state / "throughput", args.rows, args.repeat)
    print("Serving latency (mlflow models serve)...", flush=True)
    served = serving_latency(project, state / "throughput")

    floor = median(floors)
    print(f"\nResults (medians; ratios to the floor {floor:.1f} s)")
    print(figure("Spark floor: bare session + tiny job", floors, floor))
    print(figure("project Spark session + tiny job", starts, floor))
    print(figure("local scenario (make demo), whole", totals, floor, GOALS["scenario"]))
    in_jobs = [sum(seconds[i] for seconds in jobs.values()) for i in range(len(totals))]
    print(figure("  start (imports, Spark) and summary", [t - j for t, j in zip(totals, in_jobs, strict=True)], floor))
    for job, seconds in jobs.items():
        print(figure(f"  {job}", seconds, floor))
    print(figure("uv sync (uv cache warm)", [synced], floor))
    if suite is not None:
        print(figure("generated project's uv run pytest, all tests", suite, floor, GOALS["pytest"]))
        print_phases(suite_phases, suite, floor)
        print(figure('quick loop: uv run pytest -m "not slow"', quick, floor, GOALS["quick"]))
        print_phases(quick_phases, quick, floor)
    if fs_suite is not None:
        print(figure("with include_feature_store: all tests", fs_suite, floor, GOALS["pytest"]))
        print_phases(fs_suite_phases, fs_suite, floor)
        print(figure("with include_feature_store: quick loop", fs_quick, floor, GOALS["quick"]))
        print_phases(fs_quick_phases, fs_quick, floor)
    udf, pandas = median(scoring["spark_udf"]), median(scoring["pandas"])
    print(f"  batch inference, spark_udf          {args.rows / udf:>10,.0f} rows/s  ({udf:.2f} s)")
    print(f"  same model, pandas predict          {args.rows / pandas:>10,.0f} rows/s  ({pandas:.2f} s)")
    print(f"  spark_udf / pandas time             {udf / pandas:7.2f} x   (goal: within 2x)")
    cold = scoring["spark_udf"][0] / scoring["pandas"][0]
    print(f"    first run only (workers and model loading cold) {cold:.2f} x")
    print_serving(served)
    return 0


if __name__ == "__main__":
    sys.exit(main())
