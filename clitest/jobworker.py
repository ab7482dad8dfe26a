"""The compute of the fake workspace: runs the tasks of job runs, and answers for what they wrote.

The fake workspace (``main.go``) starts this program once, with the template's virtual
environment as the stand-in for the runtime the bundle names (serverless environment 4 /
Databricks Runtime 17.3 LTS ML: Python, PySpark 4.0, MLflow 3, scikit-learn, pandas, the
Databricks SDK; ``pyproject.toml`` pins the same versions as the generated projects' dev
group). It talks to the fake over two pipes, one JSON request per line on fd 3 and one JSON
answer per line on fd 4, so whatever the job code prints never mixes with the protocol.

``task``: one ``python_wheel_task``, as Databricks runs it:

- the wheels the CLI uploaded (the fake hands over their bytes, saved to files; never the
  project's working tree) are put on ``sys.path`` as installed libraries; each requirement of
  their metadata must be met by the runtime, as a cluster's library installation requires (or,
  for the few packages of ``INSTALLABLE``, by a release that installation may pick);
- the requirements files the task installs (``-r <path>`` in a serverless environment, a
  ``requirements`` library on a cluster; the fake hands over their text from the workspace
  files) are read as pip reads them in hash-checking mode: every requirement pinned with
  ``==`` and carrying a ``--hash``, no option lines (an index URL); the runtime must have each
  pinned version (the fake installs nothing), and with such a file every requirement of the
  wheels must be met by one of its pins, so that installing the wheel resolves no range;
- the entry point is resolved as Databricks documents it for ``python_wheel_task``: the
  ``entry_point`` named in the wheel's entry-point metadata, else ``<package_name>.<entry_point>()``;
- it is called with ``sys.argv = [<package_name>, *parameters]`` (``--name=value`` for named
  parameters) and no arguments; it fails the task by raising or by a non-zero ``SystemExit``,
  and its return value is ignored;
- task values the job code sets come back to the fake, for ``{{tasks.<key>.values.<name>}}``.

The job code runs in its local mode (``MLOPS_LOCAL_DIR``): local Spark, Parquet tables and an
MLflow SQLite registry in the workspace's state folder, which belongs to the fake. The local
runner's package ``mlops_local`` (the same in every project) is on the path as part of the
stand-in runtime, as ``dbutils`` and the cluster's Spark are part of Databricks'. One Spark
session serves every task, as a cluster's Spark serves the tasks that run on it.

``registry``: the Unity Catalog model-version and MLflow-run routes of the fake, answered from
the workspace's MLflow registry, i.e. from what the job code wrote; ``stand_in``: the routes of
tables and data-quality monitors, answered by the local runner's stand-in workspace of the
same state folder, which the job code's quality-monitor calls wrote to.
"""

from __future__ import annotations

import configparser
import contextlib
import gc
import hashlib
import importlib
import io
import json
import os
import re
import sys
import traceback
import zipfile
from pathlib import Path
from typing import Any

REQUEST_FD, ANSWER_FD = 3, 4


class TaskFailure(Exception):
    """The task could not start (library, entry point); the message is the run output's error."""


# --- Libraries ---------------------------------------------------------------------------


def unpacked(wheel: Path, cache: Path) -> Path:
    """The wheel's contents, unpacked once per content into ``cache`` (an installed library)."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()[:20]
    folder = cache / digest
    if not folder.is_dir():
        partial = cache / f".{digest}.{os.getpid()}.partial"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)
        partial.rename(folder)
    return folder


def dist_info(folder: Path) -> Path:
    found = sorted(folder.glob("*.dist-info"))
    if not found:
        raise TaskFailure(f"Library installation failed: {folder.name} is not a wheel (no .dist-info)")
    return found[0]


# Packages a job's library installation brings that the stand-in environment does not install:
# the releases it may pick. databricks-feature-engineering: Databricks Runtime 17.3 LTS ML ships
# 0.12.1 (release notes, "Feature Engineering compatibility matrix"), serverless environment 4
# ships none; a wheel that requires it gets it from PyPI when the job starts (on the ML runtime
# only when 0.12.1 does not satisfy the requirement). 0.13.0 and 0.18.2 are releases downloaded
# from PyPI and read for this template. Job code runs here in its local mode, where
# ``runtime.feature_engineering()`` hands over to the local runner's stand-in, so the real
# client would never be imported; installing it would pull some thirty packages into the
# stand-in environment and move its protobuf (and, for 0.12.1, Flask) below the versions the
# rest of it is tested with. A requirement none of these releases meets fails the task.
INSTALLABLE = {"databricks-feature-engineering": ("0.12.1", "0.13.0", "0.18.2")}


def installable(name: str, specifier) -> str | None:
    """The release a library installation would pick for ``name`` (the newest that fits), if any."""
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    fitting = [v for v in INSTALLABLE.get(canonicalize_name(name), ()) if specifier.contains(v, prereleases=True)]
    return max(fitting, key=Version) if fitting else None


def unmet_requirements(folder: Path) -> list[str]:
    """The wheel's ``Requires-Dist`` lines that the runtime's installed packages do not meet."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    metadata = (dist_info(folder) / "METADATA").read_text()
    unmet = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            if installable(requirement.name, requirement.specifier) is None:
                known = ", ".join(INSTALLABLE.get(requirement.name, ())) or "none"
                unmet.append(f"{requirement} (not installed; releases the library installation may pick: {known})")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement} (the runtime has {installed})")
    return unmet


HASH = re.compile(r"^--hash=sha(256|384|512):[0-9a-f]+$")


def requirement_lines(text: str) -> list[str]:
    """The logical lines of a requirements file: continuations joined, comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def pinned_requirements(path: str, text: str) -> dict[str, str]:
    """The pins of a requirements file the task installs, {normalized name: version}, checked
    as pip's hash-checking mode (``--require-hashes``) checks them and against the runtime."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    pins, problems = {}, []
    for line in requirement_lines(text):
        words = line.split()
        options = [w for w in words if w.startswith("-")]
        spec = " ".join(w for w in words if not w.startswith("-"))
        if not spec or words[0].startswith("-"):
            problems.append(f"option line {line!r} (the jobs install only pinned, hashed requirements)")
            continue
        try:
            requirement = Requirement(spec)
        except InvalidRequirement:
            problems.append(f"{spec!r} is not a requirement")
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            problems.append(f"{spec} is not pinned with == (hash-checking mode requires it)")
            continue
        if not any(HASH.match(o) for o in options) or any(not HASH.match(o) for o in options):
            problems.append(f"{requirement.name} has no --hash (hash-checking mode requires one on every requirement)")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        pinned = specifiers[0].version
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            if installable(requirement.name, requirement.specifier) == pinned:  # a release it may install
                pins[normalized(requirement.name)] = pinned
            else:
                problems.append(f"{requirement.name}=={pinned} (the runtime does not have it)")
            continue
        if not specifiers[0].contains(installed, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} (the runtime has {installed})")
            continue
        pins[normalized(requirement.name)] = installed
    if problems:
        raise TaskFailure(f"Library installation failed for {path}: " + "; ".join(problems))
    return pins


def unpinned_requirements(folder: Path, pins: dict[str, str]) -> list[str]:
    """The wheel's requirements that no pin of the task's requirements files meets: installing
    the wheel would resolve them from its ranges."""
    from packaging.requirements import Requirement

    unpinned = []
    for line in (dist_info(folder) / "METADATA").read_text().splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        pinned = pins.get(normalized(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
            unpinned.append(str(requirement))
    return unpinned


def console_scripts(folder: Path) -> dict[str, str]:
    path = dist_info(folder) / "entry_points.txt"
    if not path.exists():
        return {}
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # entry-point names are case-sensitive
    parser.read_string(path.read_text())
    return dict(parser["console_scripts"]) if parser.has_section("console_scripts") else {}


def forget_packages(names: set[str]) -> None:
    """Drop modules of earlier runs' wheels, so each task imports the code it was given."""
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]
    importlib.invalidate_caches()


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def resolve_entry_point(folders: list[Path], package: str, entry_point: str):
    """The function a ``python_wheel_task`` calls, looked up as Databricks documents it: the
    entry point in the metadata of the distribution ``package_name`` names, else the
    package's function of that name."""
    for folder in folders:
        if normalized(dist_info(folder).name.split("-")[0]) != normalized(package):
            continue
        scripts = console_scripts(folder)
        if entry_point in scripts:
            module_name, _, attribute = scripts[entry_point].strip().partition(":")
            target = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
            return target
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as error:
        raise TaskFailure(f"ModuleNotFoundError: No module named '{package}' (package_name of the task)") from error
    function = getattr(module, entry_point, None)
    if function is None:
        raise TaskFailure(
            f"AttributeError: entry point {entry_point!r} is neither in the wheel's entry-point metadata "
            f"nor a function of package {package!r}"
        )
    return function


# --- Tasks ------------------------------------------------------------------------------


class Worker:
    def __init__(self, cache: Path):
        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        self.wheel_paths: list[str] = []
        self.packages: set[str] = set()

    def task(self, request: dict[str, Any]) -> dict[str, Any]:
        output = io.StringIO()
        values: dict[str, str] = {}
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                self._run(request, values)
        except BaseException as error:  # the task failed: its error and traceback, as get-output has them
            if isinstance(error, KeyboardInterrupt):
                raise
            if isinstance(error, TaskFailure):
                message, trace = str(error), str(error)
            else:
                trace = "".join(traceback.format_exception(error)).rstrip()
                message = trace.splitlines()[-1] if trace else error.__class__.__name__
            return {"ok": False, "error": message, "trace": trace, "logs": output.getvalue(), "values": values}
        return {"ok": True, "logs": output.getvalue(), "values": values}

    def _run(self, request: dict[str, Any], values: dict[str, str]) -> None:
        folders = [unpacked(Path(wheel), self.cache) for wheel in request["wheels"]]
        if not folders:
            raise TaskFailure("Library installation failed: the task installs no wheel (libraries or environment)")
        pins: dict[str, str] = {}
        files = request.get("requirements") or []
        for file in files:
            pins.update(pinned_requirements(file["path"], file["text"]))
        for folder in folders:
            unmet = unmet_requirements(folder)
            if unmet:
                raise TaskFailure(
                    f"Library installation failed for {folder.name}: the runtime does not meet " + "; ".join(unmet)
                )
            unpinned = unpinned_requirements(folder, pins) if files else []
            if unpinned:
                raise TaskFailure(
                    f"Library installation failed for {folder.name}: no pin of the requirements files meets "
                    + "; ".join(unpinned)
                    + " (installing the wheel would resolve its ranges)"
                )
        for path in self.wheel_paths:
            with contextlib.suppress(ValueError):
                sys.path.remove(path)
        self.wheel_paths = [str(folder) for folder in folders]
        sys.path[:0] = self.wheel_paths
        new_packages = {p.name for f in folders for p in f.iterdir() if p.is_dir() and p.suffix != ".dist-info"}
        forget_packages(self.packages | new_packages)
        self.packages = new_packages

        for name, value in request.get("env", {}).items():  # "" unsets: nothing of another workspace's task stays
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        os.environ.pop("MLOPS_LOCAL_PACKAGE", None)  # runtime names the package of this task's wheel
        from mlops_local import environment

        package, entry_point = request["package"], request["entry_point"]
        function = resolve_entry_point(folders, package, entry_point)
        previous = environment.task_value_sink
        environment.task_value_sink = values.__setitem__
        sys.argv = [package, *request["parameters"]]
        try:
            function()  # its return value is not the task's outcome: an exception is
        except SystemExit as exit_:
            if exit_.code not in (None, 0):
                raise
        finally:
            environment.task_value_sink = previous
            end_mlflow_runs()


def end_mlflow_runs() -> None:
    if "mlflow" not in sys.modules:
        return
    import mlflow

    while mlflow.active_run():
        mlflow.end_run("FAILED")


# --- What the job code wrote: registry and stand-in routes --------------------------------

VERSION_PATH = re.compile(r"^/api/2\.1/unity-catalog/models/(?P<name>[^/]+)/versions(?:/(?P<version>\d+))?$")
ALIAS_PATH = re.compile(r"^/api/2\.1/unity-catalog/models/(?P<name>[^/]+)/aliases/(?P<alias>[^/]+)$")
MODEL_PATH = re.compile(r"^/api/2\.1/unity-catalog/models/(?P<name>[^/]+)$")


def missing(message: str) -> dict[str, Any]:
    return {"status": 404, "body": {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message}}


def client_of(state: Path):
    from mlflow.tracking import MlflowClient

    db = Path(state) / "mlflow.db"
    if not db.exists():
        return None
    return MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")


def version_info(client, version) -> dict[str, Any]:
    """A Unity Catalog ``ModelVersionInfo`` of an MLflow model version (REST field names)."""
    catalog_name, schema_name, model_name = version.name.split(".", 2)
    aliases = [{"alias_name": alias, "version_num": int(version.version)} for alias in (version.aliases or [])]
    return {
        "catalog_name": catalog_name,
        "schema_name": schema_name,
        "model_name": model_name,
        "version": int(version.version),
        "run_id": version.run_id or "",
        "source": version.source or "",
        "status": "READY" if version.status == "READY" else version.status,
        "comment": version.description or "",
        "created_at": version.creation_timestamp,
        "updated_at": version.last_updated_timestamp,
        "aliases": aliases,
    }


def versions_of(client, name: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    except MlflowException:
        return []


def registry(request: dict[str, Any]) -> dict[str, Any]:
    """A Unity Catalog model route, or MLflow's runs/get, from the workspace's registry."""
    from mlflow.exceptions import MlflowException

    method, path, query = request["method"], request["path"], request.get("query", {})
    client = client_of(Path(request["state"]))
    if path == "/api/2.0/mlflow/runs/get":
        run_id = (query.get("run_id") or [""])[0]
        if client is None:
            return missing(f"Run '{run_id}' not found.")
        try:
            run = client.get_run(run_id)
        except MlflowException:
            return missing(f"Run '{run_id}' not found.")
        return {"status": 200, "body": {"run": run_to_json(run)}}
    if (match := ALIAS_PATH.match(path)) and method == "GET":
        name, alias = match["name"], match["alias"]
        try:
            version = client.get_model_version_by_alias(name, alias) if client else None
        except MlflowException:
            version = None
        if version is None:
            return missing(f"Alias {alias} of {name} does not exist.")
        return {"status": 200, "body": version_info(client, version)}
    if match := VERSION_PATH.match(path):
        name, number = match["name"], match["version"]
        versions = versions_of(client, name) if client else []
        if number is None and method == "GET":
            return {"status": 200, "body": {"model_versions": [version_info(client, v) for v in versions]}}
        found = [v for v in versions if number is not None and int(v.version) == int(number)]
        if not found:
            return missing(f"Model version {number} of {name} does not exist.")
        if method == "GET":
            return {"status": 200, "body": version_info(client, found[0])}
        if method == "DELETE":
            client.delete_model_version(name, number)
            return {"status": 200, "body": {}}
    if (match := MODEL_PATH.match(path)) and method == "COUNT":  # the fake asks before it deletes a model
        return {"status": 200, "body": {"versions": len(versions_of(client, match["name"])) if client else 0}}
    if (match := MODEL_PATH.match(path)) and method == "DELETE":
        if client is not None:
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(match["name"])
        return {"status": 200, "body": {}}
    return {"status": 501, "body": {"error_code": "NOT_IMPLEMENTED", "message": f"no registry route {method} {path}"}}


def run_to_json(run) -> dict[str, Any]:
    info = run.info
    return {
        "info": {
            "run_id": info.run_id,
            "run_name": info.run_name,
            "experiment_id": info.experiment_id,
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "artifact_uri": info.artifact_uri,
            "lifecycle_stage": info.lifecycle_stage,
        },
        "data": {
            "params": [{"key": k, "value": v} for k, v in sorted(run.data.params.items())],
            "metrics": [
                {"key": k, "value": v, "timestamp": info.end_time or info.start_time, "step": 0}
                for k, v in sorted(run.data.metrics.items())
            ],
            "tags": [{"key": k, "value": v} for k, v in sorted(run.data.tags.items())],
        },
    }


_stand_ins: dict[Path, Any] = {}


def stand_in(request: dict[str, Any]) -> dict[str, Any]:
    """A table or data-quality route, from the stand-in workspace of the state folder."""
    from mlops_local.workspace import StandIn

    state = Path(request["state"])
    if state not in _stand_ins:
        state.mkdir(parents=True, exist_ok=True)
        _stand_ins[state] = StandIn.open(state)
    workspace = _stand_ins[state]
    status, body = workspace.handle(request["method"], request["path"], request.get("body"))
    if request["method"] != "GET":
        workspace.save()
    return {"status": status, "body": body}


# --- Protocol ---------------------------------------------------------------------------


def main() -> int:
    """``jobworker.py compute RUNTIME_PATH CACHE`` runs tasks; ``jobworker.py service RUNTIME_PATH``
    answers the registry and stand-in routes (a second process, so that job code calling the
    fake while its task runs is answered)."""
    role, runtime_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, runtime_path)
    if role == "compute":
        operations = {"task": Worker(Path(sys.argv[3])).task}
    else:
        operations = {"registry": registry, "stand_in": stand_in}
    with os.fdopen(REQUEST_FD, "r") as requests, os.fdopen(ANSWER_FD, "w") as answers:
        for line in requests:
            request = json.loads(line)
            try:
                answer = operations[request["op"]](request)
            except Exception:  # a bug here, not in the job: the fake reports it as a 500
                answer = {"status": 500, "body": {"error_code": "INTERNAL_ERROR", "message": traceback.format_exc()}}
            answers.write(json.dumps(answer, default=str) + "\n")
            answers.flush()
    # The fake stops the worker by closing the request pipe and waits for it. Python's last
    # collections would walk every object the job code imported (MLflow, Spark, scikit-learn):
    # 1 s or more. Frozen objects are left out of them; the exit handlers still run.
    gc.freeze()
    return 0


if __name__ == "__main__":
    sys.exit(main())
