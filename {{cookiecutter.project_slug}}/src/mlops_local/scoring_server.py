"""Serve a model on this machine with MLflow's own scoring server, and smoke-test it.

``scoring_server`` does what ``mlflow models serve -m <uri> --env-manager local`` does,
with this interpreter on 127.0.0.1 and a free port: it downloads the model and runs the
command MLflow's own ``scoring_server.get_cmd`` gives (uvicorn on MLflow's scoring app). It
waits until the server answers ``/ping``, and stops it when the ``with`` block ends, also
when a step inside fails. Going through the ``mlflow`` command line instead would add a
process that imports MLflow's whole CLI (about 7 s of CPU here) only to start the same
server. ``smoke_test`` sends the model's own serving input example (what ``validate``
checked) and a malformed request, and compares the served predictions with ``predict`` in
this process on the same rows.
``check_serving`` is the local scenario's last step: prod's endpoint (as the stand-in
workspace keeps it) serves prod's champion, and that champion passes the smoke test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests
from mlflow.models.utils import load_serving_example
from mlflow.pyfunc import scoring_server as mlflow_scoring
from mlflow.tracking import MlflowClient

from .project import project_module
from .workspace import local_endpoint

# A request the model must refuse: a column its signature does not have.
MALFORMED = {"dataframe_split": {"columns": ["no_such_feature"], "data": [[1.0]]}}


class ServingError(RuntimeError):
    """The local scoring server did not start or did not answer as an endpoint must."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and everything it started (its own process group), and wait until they are gone."""
    group = process.pid
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()  # reap the first process once it exits
            if not _group_alive(group):
                return
            time.sleep(0.1)


@contextlib.contextmanager
def scoring_server(model_uri: str, timeout: float = 180.0) -> Iterator[str]:
    """Serve ``model_uri`` locally; yields the server's base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="served_model_") as download, tempfile.TemporaryFile("w+") as log:
        try:
            model_path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=download)
        except mlflow.MlflowException as error:
            raise ServingError(f"cannot download {model_uri} to serve it: {error.message}") from None
        command, env = mlflow_scoring.get_cmd(model_path, port=port, host="127.0.0.1", nworkers=1)
        # `uvicorn` is found on PATH, as `mlflow models serve` finds it: this interpreter's scripts first.
        scripts = str(Path(sys.executable).parent)
        env.update(
            PATH=os.pathsep.join([scripts, env.get("PATH", "")]),
            MLFLOW_TRACKING_URI=mlflow.get_tracking_uri(),
            MLFLOW_REGISTRY_URI=mlflow.get_registry_uri(),
            # A model that looks features up reads the online tables when served, as Model Serving does.
            MLOPS_LOCAL_SERVING="1",
        )
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_ready(url, process, log, timeout)
            yield url
        finally:
            _stop(process)


def _wait_until_ready(url: str, process: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise ServingError(f"the scoring server exited with code {process.returncode}:\n{log.read()[-3000:]}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    log.seek(0)
    raise ServingError(f"the scoring server did not answer {url}/ping within {timeout:.0f}s:\n{log.read()[-3000:]}")


def invoke(url: str, payload: str | dict) -> requests.Response:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return requests.post(f"{url}/invocations", data=data, headers={"Content-Type": "application/json"}, timeout=60)


def example_rows(serving_input: str, schema=None) -> pd.DataFrame:
    """The rows of a ``dataframe_split`` serving input, typed as the model's input schema says."""
    split = json.loads(serving_input)["dataframe_split"]
    rows = pd.DataFrame(split["data"], columns=split["columns"])
    if schema is not None and schema.has_input_names():
        rows = rows.astype({spec.name: spec.type.to_numpy() for spec in schema.inputs if spec.name in rows})
    return rows


def one_per_row(predictions) -> np.ndarray:
    """Predictions as one number per row, whether a model answers a list or one named column
    (a model that looks its features up answers a ``prediction`` column, records when served)."""
    if isinstance(predictions, pd.DataFrame) and predictions.shape[1] == 1:
        predictions = predictions.iloc[:, 0]
    elif isinstance(predictions, list) and predictions and isinstance(predictions[0], dict):
        predictions = [next(iter(row.values())) for row in predictions if len(row) == 1]
    return np.asarray(predictions, dtype="float64")


@dataclass
class SmokeResult:
    rows: int
    max_difference: float
    malformed_status: int
    malformed_message: str


def smoke_test(url: str, model_uri: str) -> SmokeResult:
    """Send the input example and a malformed request to a running server; raise ServingError on a fault."""
    serving_input = load_serving_example(model_uri)
    if not serving_input:
        raise ServingError(f"{model_uri} has no serving input example to send")
    answer = invoke(url, serving_input)
    if answer.status_code != 200:
        raise ServingError(f"the input example got HTTP {answer.status_code}: {answer.text[:500]}")
    served = one_per_row(answer.json()["predictions"])
    model = mlflow.pyfunc.load_model(model_uri)
    rows = example_rows(serving_input, model.metadata.get_input_schema())
    expected = one_per_row(model.predict(rows))
    if served.shape != expected.shape or not np.allclose(served, expected, rtol=1e-9, atol=1e-9):
        raise ServingError(f"served predictions {served.tolist()} differ from predict() {expected.tolist()}")

    refused = invoke(url, MALFORMED)
    try:
        message = refused.json().get("message", "")
    except ValueError:
        message = ""
    if not 400 <= refused.status_code < 500 or not message:
        raise ServingError(
            f"a malformed request got HTTP {refused.status_code} {refused.text[:300]!r}; "
            "expected a 4xx with a readable message"
        )
    return SmokeResult(len(rows), float(np.max(np.abs(served - expected))), refused.status_code, message)


def served_version(endpoint: dict | None) -> str | None:
    """The model version a stand-in endpoint serves, or None."""
    entities = (endpoint or {}).get("config", {}).get("served_entities") or [{}]
    version = entities[0].get("entity_version")
    return None if version is None else str(version)


def check_serving(state: Path, model_name: str, endpoint_name: str, echo: Callable[[str], None] = print) -> SmokeResult:
    """The endpoint follows the champion of ``model_name``; the champion answers like an endpoint would."""
    names = project_module("names")
    model = names.ModelRef.parse(model_name)
    champion = project_module("registry").alias_version(MlflowClient(), model, names.CHAMPION)
    endpoint = local_endpoint(state, endpoint_name)
    if endpoint is None or served_version(endpoint) != champion:
        served = "nothing" if endpoint is None else f"v{served_version(endpoint)}"
        raise ServingError(f"endpoint {endpoint_name} serves {served}, not the champion v{champion}")
    echo(f"\n[serving] endpoint {endpoint['name']} serves {model.full_name} v{champion} (the champion)")
    uri = model.uri(alias=names.CHAMPION)
    echo(f"[serving] MLflow's scoring server on {uri} (as mlflow models serve --env-manager local): smoke test")
    try:
        with scoring_server(uri) as url:
            result = smoke_test(url, uri)
    except ServingError as error:
        raise ServingError(f"serving the champion locally failed: {error}") from None
    echo(
        f"[serving] {url}: the input example's {result.rows} rows match predict() "
        f"(max difference {result.max_difference:.1e}); a malformed request got HTTP "
        f"{result.malformed_status}: {result.malformed_message[:120]}"
    )
    return result
