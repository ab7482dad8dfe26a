"""Speed figures of the generated project on this machine: what `make bench` prints.

    python tools/bench.py [--repeat 3] [--rows 1000000] [--quick]

- Spark session start (a fresh process each time);
- the local scenario (`python -m <package>.local scenario`, fresh state, fresh process):
  total wall time and each job's time;
- batch-inference throughput at --rows rows: the job's scoring path (``spark_udf``) next to
  the same model's plain pandas ``predict`` on the same rows, and their ratio;
- serving latency (``serving_latency``): the same model behind MLflow's scoring server
  (``mlflow models serve --env-manager local``, as the local scenario serves the champion),
  p50 and p95 over 200 single-row requests and the throughput of 1,000-row batches, next
  to in-process ``predict`` on the same rows, and their ratios;
- the generated project's own test suite (skipped with --quick).

Figures are medians over --repeat runs. The machine is shared and noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from bake import project_env, rebake

JOB_LINE = re.compile(r"^=== (\w+) \[(\w+)\] succeeded in ([0-9.]+)s", re.MULTILINE)


def median(values: list[float]) -> float:
    return statistics.median(values)


def spark_start(project: Path, state: Path, repeat: int) -> list[float]:
    code = (
        "import time; t = time.perf_counter()\n"
        f"from {project.name}.runtime import get_spark\n"
        "get_spark().range(1).count(); print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code], env=project_env(project, state), capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def scenario(project: Path, state: Path, repeat: int) -> tuple[list[float], dict[str, list[float]]]:
    totals, jobs = [], defaultdict(list)
    env = project_env(project, state)
    for i in range(repeat):
        subprocess.run(
            [sys.executable, "-m", f"{project.name}.local", "reset"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", f"{project.name}.local", "scenario"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        totals.append(time.perf_counter() - started)
        if out.returncode != 0:
            sys.exit(f"scenario failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        for job, target, seconds in JOB_LINE.findall(out.stdout):
            jobs[f"{job} [{target}]"].append(float(seconds))
        print(f"  scenario run {i + 1}/{repeat}: {totals[-1]:.1f}s", flush=True)
    return totals, jobs


def throughput(project: Path, state: Path, rows: int, repeat: int) -> dict[str, list[float]]:
    """Scoring ``rows`` trips through spark_udf and through pandas predict, in this process."""
    os.environ["MLOPS_LOCAL_DIR"] = str(state)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    sys.path.insert(0, str(project / "src"))
    import mlflow

    def module(name: str):
        return importlib.import_module(f"{project.name}.{name}")

    runtime, data, names, train, batch_inference = map(module, ("runtime", "data", "names", "train", "batch_inference"))

    spark = runtime.get_spark()
    runtime.configure_mlflow()
    model = names.ModelRef("bench", "ml", "fares")
    args = [f"--catalog={model.catalog}", f"--schema={model.schema}", f"--model_name={model.name}"]
    version = train.main([*args, "--experiment_name=/bench", "--training_end_date=2016-02-14"])
    trips = data.add_features(data.generate_trips(spark, rows=rows, seed=5)).cache()
    assert trips.count() == rows
    features = trips.select(*data.FEATURES).toPandas()
    pyfunc = mlflow.pyfunc.load_model(model.uri(version))

    results = defaultdict(list)
    for i in range(repeat):
        started = time.perf_counter()
        batch_inference.score(trips, model, version).write.format("noop").mode("overwrite").save()
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
    trips.unpersist()
    return results


def serving_latency(project: Path, state: Path, singles: int = 200, batch_rows: int = 1000, batches: int = 20) -> dict:
    """Latency and batch throughput of a model behind ``mlflow models serve`` against in-process predict.

    Trains (or reuses) the bench model in ``state``, so it can run on its own or after ``throughput``.
    """
    import json

    os.environ["MLOPS_LOCAL_DIR"] = str(state)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    if str(project / "src") not in sys.path:
        sys.path.insert(0, str(project / "src"))
    import mlflow
    import requests

    def module(name: str):
        return importlib.import_module(f"{project.name}.{name}")

    runtime, data, names, train, registry = map(module, ("runtime", "data", "names", "train", "registry"))
    scoring_server = module("local.scoring_server")
    runtime.configure_mlflow()
    model = names.ModelRef("bench", "ml", "fares")
    client = mlflow.tracking.MlflowClient()
    versions = client.search_model_versions(f"name='{model.full_name}'") if registry.model_exists(client, model) else []
    if versions:
        version = str(max(int(v.version) for v in versions))
    else:
        args = [f"--catalog={model.catalog}", f"--schema={model.schema}", f"--model_name={model.name}"]
        version = train.main([*args, "--experiment_name=/bench", "--training_end_date=2016-02-14"])
    uri = model.uri(version)
    spark = runtime.get_spark()
    rows = data.add_features(data.generate_trips(spark, rows=batch_rows, seed=11)).select(*data.FEATURES).toPandas()
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


def test_suite(project: Path) -> float:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("MLOPS_LOCAL_DIR", None)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"generated test suite failed:\n{out.stdout[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="skip the generated test suite")
    args = parser.parse_args()

    project = rebake(args.build_dir / "bench", project_slug="bench_project")
    state = (args.build_dir / "bench-state").resolve()
    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"Project: {project} (defaults, deploy_code); medians of {args.repeat} runs\n")

    print("Spark session start...", flush=True)
    starts = spark_start(project, state, args.repeat)
    print("Local scenario (fresh process and state each run)...", flush=True)
    totals, jobs = scenario(project, state, args.repeat)
    print(f"Batch-inference throughput at {args.rows:,} rows...", flush=True)
    scoring = throughput(project, state / "throughput", args.rows, args.repeat)
    print("Serving latency (mlflow models serve)...", flush=True)
    served = serving_latency(project, state / "throughput")
    suite = None if args.quick else test_suite(project)

    udf, pandas = median(scoring["spark_udf"]), median(scoring["pandas"])
    print("\nResults (medians)")
    print(f"  Spark session start                 {median(starts):7.1f} s")
    print(f"  local scenario, whole               {median(totals):7.1f} s   (goal: under 180 s)")
    for job, seconds in jobs.items():
        print(f"    {job:<33} {median(seconds):7.1f} s   ({len(seconds)} runs)")
    print(f"  batch inference, spark_udf          {args.rows / udf:>10,.0f} rows/s  ({udf:.2f} s)")
    print(f"  same model, pandas predict          {args.rows / pandas:>10,.0f} rows/s  ({pandas:.2f} s)")
    print(f"  spark_udf / pandas time             {udf / pandas:7.2f} x   (goal: within 2x)")
    cold = scoring["spark_udf"][0] / scoring["pandas"][0]
    print(f"    first run only (workers and model loading cold) {cold:.2f} x")
    print_serving(served)
    if suite is not None:
        print(f"  generated project's tests           {suite:7.1f} s   (goal: under 120 s; one run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
