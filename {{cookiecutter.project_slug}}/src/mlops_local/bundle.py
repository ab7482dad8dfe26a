"""Read the bundle as ``databricks bundle validate -t <target>`` would see it.

``load_bundle`` reads ``databricks.yml`` and its ``include`` files; ``resolve`` merges a
target into the root configuration, applies the target's mode, and replaces every
``${...}`` reference. The result is what the local runner executes and what the
template's tests check, so the jobs that run locally are the jobs that deploy.

What is modelled, following the Databricks CLI:
- target overrides are merged into the root; a job's ``tasks``, ``job_clusters`` and
  ``parameters`` are merged by their key, other lists (``environments`` too) are appended,
  and once references are resolved a resource's ``grants`` are merged by principal, each
  privilege once (the CLI's ``MergeJobTasks``, ``MergeJobClusters``, ``MergeJobParameters``
  and ``MergeGrants`` in ``config/mutator/resourcemutator/``, v1.12.1);
- variables: ``--var`` over ``BUNDLE_VAR_<name>`` over the target's value over the
  default; a variable without a value is an error;
- ``mode: development`` prefixes names (``[dev <user>] `` for jobs and experiment
  basenames, ``dev_<user>_`` for Unity Catalog names), pauses schedules and tags jobs
  ``dev: <user>``; ``presets.name_prefix``, ``presets.tags`` and
  ``presets.trigger_pause_status: PAUSED`` do the same; references in ``presets`` and
  ``workspace`` are resolved first (``ResolveVariableReferencesWithoutResources`` runs
  before ``ApplyTargetMode`` in the CLI's ``phases/initialize.go``);
- references to ``var``, ``bundle`` (``bundle.git.commit``: the project's git HEAD),
  ``workspace`` and ``resources`` (a job's ``id`` resolves to ``local:<key>``).
  ``{{...}}`` job-run values are left for the runner.
"""

from __future__ import annotations

import copy
import getpass
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-\[\]]+)\}")
MERGE_KEYS = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "parameters": "name",
}
TARGET_OVERRIDES = ("bundle", "workspace", "artifacts", "resources", "presets", "permissions", "run_as", "sync")


class BundleError(Exception):
    """The bundle configuration cannot be read or resolved; the message says where."""


@dataclass
class ResolvedBundle:
    name: str
    target: str
    mode: str | None
    variables: dict[str, Any]
    workspace: dict[str, Any]
    resources: dict[str, dict[str, dict[str, Any]]]
    config: dict[str, Any] = field(repr=False)
    # The target's own block as written (unresolved): what the CLI's "explicitly set" checks read.
    target_settings: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return self.resources.get("jobs", {})

    def job(self, key: str) -> dict[str, Any]:
        if key not in self.jobs:
            available = ", ".join(sorted(self.jobs)) or "none"
            raise BundleError(f"Target {self.target!r} has no job {key!r} (jobs in this target: {available})")
        return self.jobs[key]

    def model_full_name(self, key: str = "model") -> str:
        model = self.resources["registered_models"][key]
        return f"{model['catalog_name']}.{model['schema_name']}.{model['name']}"


# --- Loading -------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise BundleError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a mapping at the top level")
    return data


def merge(base: Any, override: Any, path: str = "") -> Any:
    """Merge ``override`` into ``base`` the way target overrides and includes merge."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            result[key] = merge(base[key], value, f"{path}.{key}") if key in base else copy.deepcopy(value)
        return result
    if isinstance(base, list) and isinstance(override, list):
        key = MERGE_KEYS.get(path.rsplit(".", 1)[-1])
        if key and all(isinstance(item, dict) for item in base + override):
            merged: dict[Any, Any] = {}
            for item in base + override:
                merged[item.get(key)] = merge(merged[item.get(key)], item, path) if item.get(key) in merged else item
            return list(merged.values())
        return base + copy.deepcopy(override)
    return copy.deepcopy(override)


def load_bundle(project_dir: Path) -> dict[str, Any]:
    """``databricks.yml`` merged with every file its ``include`` globs match."""
    project_dir = Path(project_dir)
    root_file = project_dir / "databricks.yml"
    if not root_file.is_file():
        raise BundleError(f"No databricks.yml in {project_dir}")
    root = _read_yaml(root_file)
    for pattern in root.get("include", []) or []:
        matches = sorted(project_dir.glob(pattern))
        if not matches:
            raise BundleError(f"databricks.yml: include {pattern!r} matches no file")
        for path in matches:
            part = _read_yaml(path)
            for key in part.get("resources", {}) or {}:
                for name in part["resources"][key] or {}:
                    if name in (root.get("resources", {}).get(key) or {}):
                        raise BundleError(f"{path}: resource {key}.{name} is defined twice")
            root = merge(root, part)
    return root


# --- Resolving -----------------------------------------------------------------------


def local_user() -> str:
    """The user name a local run deploys as (``DATABRICKS_USER``, else the login name)."""
    return os.environ.get("DATABRICKS_USER") or f"{getpass.getuser()}@localhost"


def short_name(user: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", user.split("@", 1)[0]).lower()


def uc_prefix(prefix: str) -> str:
    """``[dev alice] `` -> ``dev_alice_``: the form Unity Catalog names take.

    As the CLI's ``normalizePrefix`` (apply_presets.go) and ``textutil.NormalizeString``:
    every character but letters and digits becomes ``_``, runs of ``_`` collapse, and
    leading and trailing ``_`` go.
    """
    trimmed = prefix.replace("[", "").strip(" ")
    suffix = "_" if trimmed.endswith("]") else ""
    normalized = re.sub(r"_+", "_", re.sub(r"[^\w]|_", "_", trimmed.lower())).strip("_")
    return normalized + suffix


def git_commit(project_dir: Path | None) -> str:
    """The HEAD commit of the repository holding ``project_dir`` ('' outside a repository).

    What the CLI's ``LoadGitDetails`` puts in ``bundle.git.commit``. Outside a repository
    the CLI leaves it empty, and ``${bundle.git.commit}`` resolves to '' there too.
    """
    if project_dir is None:
        return ""
    try:
        result = subprocess.run(
            ["git", "-C", str(project_dir), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _variable_values(config: dict, target: str, target_config: dict, overrides: dict[str, str]) -> dict[str, Any]:
    definitions = config.get("variables", {}) or {}
    target_values = target_config.get("variables", {}) or {}
    values = {}
    for name in target_values:
        if name not in definitions:
            raise BundleError(f"targets.{target}.variables.{name}: variable {name!r} is not defined")
    for name, definition in definitions.items():
        definition = definition or {}
        target_value = target_values.get(name)
        if isinstance(target_value, dict):
            target_value = target_value.get("default")
        for candidate in (
            overrides.get(name),
            os.environ.get(f"BUNDLE_VAR_{name}"),
            target_value,
            definition.get("default"),
        ):
            if candidate is not None:
                values[name] = candidate
                break
        else:
            raise BundleError(
                f"Variable {name!r} has no value in target {target!r}: set targets.{target}.variables.{name} "
                f"or pass --var {name}=<value>"
            )
    unknown = set(overrides) - set(definitions)
    if unknown:
        raise BundleError(f"--var {', '.join(sorted(unknown))}: no such variable in the bundle")
    return values


def _item_name(item: Any, index: int) -> str:
    """How an error names a list item: a task by its key, anything else by position."""
    return item["task_key"] if isinstance(item, dict) and "task_key" in item else str(index)


class _Resolver:
    def __init__(self, context: dict[str, Any], resources: dict[str, Any], target: str):
        self.context = context
        self.resources = resources
        self.target = target
        self.stack: list[str] = []

    def lookup(self, ref: str, where: str) -> Any:
        if ref in self.stack:
            raise BundleError(f"{where}: circular reference ${{{ref}}}")
        self.stack.append(ref)
        try:
            parts = ref.split(".")
            if parts[0] == "resources":
                if len(parts) < 4:
                    raise BundleError(f"{where}: ${{{ref}}} should name resources.<type>.<key>.<field>")
                kind, key, attr = parts[1], parts[2], parts[3:]
                resource = self.resources.get(kind, {}).get(key)
                if resource is None:
                    raise BundleError(
                        f"{where}: ${{{ref}}} does not resolve: target {self.target!r} has no {kind}.{key}"
                    )
                if attr == ["id"]:
                    return f"local:{key}"
                value: Any = resource
            else:
                value = self.context
                attr = parts
            for part in attr:
                if not isinstance(value, dict) or part not in value:
                    raise BundleError(f"{where}: ${{{ref}}} does not resolve in target {self.target!r}")
                value = value[part]
            return self.resolve(value, where)
        finally:
            self.stack.pop()

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{where}[{_item_name(v, i)}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = REFERENCE.fullmatch(value)
        if whole:
            return self.lookup(whole.group(1), where)
        return REFERENCE.sub(lambda m: str(self.lookup(m.group(1), where)), value)


def _apply_mode(resources: dict[str, Any], mode: str | None, presets: dict[str, Any], user: str) -> None:
    """What ``mode: development`` and the presets do to names, tags, schedules and triggers (ApplyPresets)."""
    paused = mode == "development" or presets.get("trigger_pause_status") == "PAUSED"
    prefix = presets.get("name_prefix") or (f"[dev {short_name(user)}] " if mode == "development" else "")
    tags = {str(k): str(v) for k, v in (presets.get("tags") or {}).items()}
    if mode == "development":
        tags.setdefault("dev", short_name(user))
    for job in resources.get("jobs", {}).values():
        job["name"] = prefix + job.get("name", "")
        for key, value in tags.items():
            if not (job.get("tags") or {}).get(key):
                job.setdefault("tags", {})[key] = value
        if mode == "development" and not job.get("max_concurrent_runs"):
            job["max_concurrent_runs"] = 4
        for key in ("schedule", "trigger"):  # a job has one of them
            if paused and isinstance(job.get(key), dict):
                job[key].setdefault("pause_status", "PAUSED")
    for experiment in resources.get("experiments", {}).values():
        head, _, base = experiment["name"].rpartition("/")
        experiment["name"] = f"{head}/{prefix}{base}" if head else prefix + base
        for key, value in tags.items():
            if not any(tag.get("key") == key for tag in experiment.get("tags", [])):
                experiment.setdefault("tags", []).append({"key": key, "value": value})
    for kind in ("registered_models", "model_serving_endpoints"):
        for resource in resources.get(kind, {}).values():
            resource["name"] = uc_prefix(prefix) + resource["name"]
    if paused:
        for monitor in resources.get("quality_monitors", {}).values():
            monitor.pop("schedule", None)  # monitors cannot be paused: the CLI drops their schedule


def resolve(
    config: dict[str, Any],
    target: str | None = None,
    variables: dict[str, str] | None = None,
    user: str | None = None,
    project_dir: Path | None = None,
) -> ResolvedBundle:
    """The configuration of ``target`` (default: the default target), fully resolved.

    ``project_dir`` gives ``${bundle.git.commit}`` its value (the git HEAD there; else '').
    """
    targets = config.get("targets", {}) or {}
    if target is None:
        defaults = [name for name, t in targets.items() if (t or {}).get("default")]
        if len(defaults) != 1:
            raise BundleError("No single default target: pass --target")
        target = defaults[0]
    if target not in targets:
        raise BundleError(f"Unknown target {target!r}; the bundle defines: {', '.join(targets)}")
    target_config = targets[target] or {}
    user = user or local_user()

    merged = {k: copy.deepcopy(v) for k, v in config.items() if k != "targets"}
    for key in TARGET_OVERRIDES:
        if key in target_config:
            merged[key] = merge(merged.get(key, {}), target_config[key], key)
    mode = target_config.get("mode")
    bundle_name = merged["bundle"]["name"]
    workspace = merged.setdefault("workspace", {})
    workspace.setdefault("root_path", f"/Workspace/Users/{user}/.bundle/{bundle_name}/{target}")
    workspace.setdefault("file_path", f"{workspace['root_path']}/files")
    workspace["current_user"] = {"userName": user, "short_name": short_name(user)}

    values = _variable_values(config, target, target_config, variables or {})
    git = {"commit": git_commit(project_dir), **(merged["bundle"].get("git") or {})}
    context = {"bundle": {**merged["bundle"], "target": target, "git": git}, "workspace": workspace, "var": values}
    resources = merged.get("resources", {}) or {}

    # Names and presets first (they may use variables), then the mode's prefixes, then everything.
    names = _Resolver(context, {}, target)
    merged["presets"] = names.resolve(merged.get("presets", {}) or {}, "presets")
    for kind in ("jobs", "registered_models", "experiments", "model_serving_endpoints"):
        for key, resource in resources.get(kind, {}).items():
            if "name" in resource:
                resource["name"] = names.resolve(resource["name"], f"resources.{kind}.{key}.name")
            if kind == "jobs" and isinstance(resource.get("trigger"), str):  # a complex variable: paused below
                resource["trigger"] = copy.deepcopy(names.resolve(resource["trigger"], f"resources.jobs.{key}.trigger"))
    _apply_mode(resources, mode, merged["presets"], user)
    resolver = _Resolver(context, resources, target)
    resolved_resources = _merge_grants(resolver.resolve(resources, "resources"))
    resolved_values = {name: resolver.resolve(value, f"variables.{name}") for name, value in values.items()}
    workspace = resolver.resolve(workspace, "workspace")
    merged["resources"] = resolved_resources
    return ResolvedBundle(
        name=bundle_name,
        target=target,
        mode=mode,
        variables=resolved_values,
        workspace=workspace,
        resources=resolved_resources,
        config=resolver.resolve(merged, "root"),
        target_settings=copy.deepcopy(target_config),
    )


def _merge_grants(resources: dict[str, Any]) -> dict[str, Any]:
    """``MergeGrants``: one grant per principal, with each privilege once, in first-seen order."""
    for kind in resources.values():
        for resource in (kind or {}).values():
            if not isinstance(resource, dict) or not resource.get("grants"):
                continue
            merged: dict[str, list] = {}
            for grant in resource["grants"]:
                merged.setdefault(grant.get("principal"), []).extend(grant.get("privileges") or [])
            resource["grants"] = [
                {"principal": principal, "privileges": list(dict.fromkeys(privileges))}
                for principal, privileges in merged.items()
            ]
    return resources


def target_names(config: dict[str, Any]) -> list[str]:
    return list((config.get("targets") or {}).keys())
