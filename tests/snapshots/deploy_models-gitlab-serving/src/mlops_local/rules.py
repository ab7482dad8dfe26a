"""Deploy-time rules that the bundle schema cannot see, checked offline.

Each rule works on the bundle as ``bundle.resolve`` gives it for one target (some also
look at the other targets) and yields a ``Finding`` for every place that breaks it. A rule
is one of three kinds (``KINDS``), and its docstring says which:

- ``mirrors``: what ``databricks bundle validate --strict`` or ``deploy`` of the Databricks
  CLI v1.12.1 refuses or warns about; the docstring names the CLI file and function
  (paths under ``bundle/`` of github.com/databricks/cli). The template's tests give each
  rule's broken bundle to the real CLI and expect the same verdict.
- ``server``: what the CLI sends as written and the workspace or Unity Catalog refuses,
  so the real CLI passes it offline and a deploy fails in a workspace.
- ``policy``: what the CLI and the workspace accept, but this template requires.

``check(bundles)`` runs every rule over ``{target: ResolvedBundle}``;
``python -m mlops_local validate`` prints the findings and fails on any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .bundle import ResolvedBundle

Bundles = dict[str, ResolvedBundle]

# Workspace-local groups: every workspace has them, Unity Catalog cannot grant to them.
WORKSPACE_LOCAL_GROUPS = {"users", "admins"}
# Resource types whose API has no run_as (validateRunAs in run_as.go).
RUN_AS_UNSUPPORTED = ("model_serving_endpoints", "quality_monitors", "apps")
# Top-level permission levels per resource type (levelsMap in apply_bundle_permissions.go).
LEVELS = {
    "genie_spaces": {"CAN_MANAGE", "CAN_VIEW"},
    "secret_scopes": {"CAN_MANAGE", "CAN_VIEW"},
    "database_instances": {"CAN_MANAGE", "CAN_VIEW"},
    "postgres_projects": {"CAN_MANAGE", "CAN_VIEW"},
    "vector_search_endpoints": {"CAN_MANAGE", "CAN_VIEW"},
    "instance_pools": {"CAN_MANAGE", "CAN_VIEW"},
    "jobs": {"CAN_MANAGE", "CAN_VIEW", "CAN_RUN"},
    "pipelines": {"CAN_MANAGE", "CAN_VIEW", "CAN_RUN"},
    "experiments": {"CAN_MANAGE", "CAN_VIEW"},
    "models": {"CAN_MANAGE", "CAN_VIEW"},
    "model_serving_endpoints": {"CAN_MANAGE", "CAN_VIEW", "CAN_RUN"},
    "dashboards": {"CAN_MANAGE", "CAN_VIEW"},
    "apps": {"CAN_MANAGE", "CAN_VIEW"},
    "alerts": {"CAN_MANAGE", "CAN_VIEW", "CAN_RUN"},
    "sql_warehouses": {"CAN_MANAGE", "CAN_VIEW", "CAN_RUN"},
    "clusters": {"CAN_MANAGE", "CAN_VIEW", "CAN_RUN"},
}
PROTECTED_TYPES = ("registered_models", "experiments")
TRACE_TAGS = ("project", "target", "deployment_pattern")
TRACE_PARAMETERS = ("git_commit", "target", "job_run_id")
# Entry points whose tasks create model versions: they must receive the provenance.
VERSION_MAKERS = ("train", "copy_model")


@dataclass(frozen=True)
class Finding:
    rule: str
    target: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.target}: {self.message}"


def _deployed(bundle: ResolvedBundle) -> bool:
    """Targets deployed by a service principal: everything but development mode."""
    return bundle.mode != "development"


def _principal(identity: dict | None) -> str:
    identity = identity or {}
    return identity.get("service_principal_name") or identity.get("user_name") or ""


# --- 1. Unity Catalog grants ----------------------------------------------------------


def uc_grant_principals(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """Every grant names a principal and privileges; none goes to a workspace-local group.

    Mirrors ``config/validate/required.go`` (``errorForInvalidGrants``: a grant without a
    principal or with no privileges is an error of ``bundle validate``). Server side:
    ``direct/dresources/grants.go`` sends each declared principal to the Grants API as
    written, and Unity Catalog refuses workspace-local groups (``users``, ``admins``), so
    the deploy fails in a workspace (the CLI's fake workspace stores any principal).
    Workspace ACLs (``permissions``) may name them; grants may not.
    """
    for kind, resources in bundle.resources.items():
        for key, resource in resources.items():
            for grant in resource.get("grants", []) or []:
                principal = str(grant.get("principal", ""))
                if not grant.get("privileges"):
                    message = f"{kind}.{key}: a grant to {principal!r} with no privileges"
                    yield Finding("uc-grant-principal", bundle.target, message)
                if not principal.strip():
                    yield Finding("uc-grant-principal", bundle.target, f"{kind}.{key}: a grant names no principal")
                elif principal.strip().lower() in WORKSPACE_LOCAL_GROUPS:
                    yield Finding(
                        "uc-grant-principal",
                        bundle.target,
                        f"{kind}.{key}: grant to {principal!r}, a workspace-local group Unity Catalog refuses; "
                        "grant to an account-level group (variable uc_read_group, e.g. 'account users')",
                    )


# --- 2. run_as -------------------------------------------------------------------------


def run_as(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """A target-level run_as breaks monitors, endpoints and apps; deployed jobs carry their own.

    Mirrors ``config/mutator/resourcemutator/run_as.go``: ``validateRunAs`` (exactly one
    identity; resources whose API has no run_as are errors whenever run_as differs from
    the identity running the CLI, which for CI validating another target it does) and
    ``setRunAsForJobs`` (a job's own run_as is left alone). Policy: every job outside
    development mode names the identity it runs as (the CLI lets such a job run as
    whoever deployed it).
    """
    top = bundle.config.get("run_as")
    if top is not None:
        names = [top.get("service_principal_name"), top.get("user_name")]
        if sum(bool(n) for n in names) != 1:
            yield Finding("run-as", bundle.target, "run_as must name exactly one identity")
        for kind in RUN_AS_UNSUPPORTED:
            if bundle.resources.get(kind):
                yield Finding(
                    "run-as",
                    bundle.target,
                    f"target-level run_as with {kind}: `bundle validate` fails for every identity but "
                    f"{_principal(top)!r}; set run_as on each job instead",
                )
        for kind, resources in bundle.resources.items():
            if kind == "dashboards":
                for key, dashboard in resources.items():
                    if dashboard.get("embed_credentials"):
                        yield Finding("run-as", bundle.target, f"target-level run_as with embedded-credential {key}")
    for key, job in bundle.jobs.items():
        identity = job.get("run_as")
        if identity is not None and sum(bool(identity.get(f)) for f in ("service_principal_name", "user_name")) != 1:
            yield Finding("run-as", bundle.target, f"jobs.{key}: run_as must name exactly one identity")
        elif _deployed(bundle) and identity is None:
            yield Finding("run-as", bundle.target, f"jobs.{key} has no run_as: it would run as whoever deployed it")


# --- 3. Grants a promotion needs -------------------------------------------------------


def promotion_grants(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """Every principal a promotion needs is declared on the bundle-managed source model.

    Policy, resting on ``direct/dresources/grants.go`` (``removedGrantPrincipals`` and
    ``buildGrantChanges``): the grants declared on a model are authoritative, a deploy
    revokes every other principal's privileges, so a grant made by hand disappears at the
    next deploy (the CLI accepts the bundle; the promotion then fails). Where this target's
    ``model_promotion_job`` copies from another target's model (variable
    ``promotion_source_catalog``), that target must grant EXECUTE to the identity the
    promotion runs as. Every model must also grant EXECUTE to
    ``var.uc_read_group`` when the bundle defines it.
    """
    reader = bundle.variables.get("uc_read_group")
    for key, model in bundle.resources.get("registered_models", {}).items():
        if reader and not _grants(model, reader, "EXECUTE"):
            yield Finding("grants", bundle.target, f"registered_models.{key}: no EXECUTE for {reader!r}")
    job = bundle.jobs.get("model_promotion_job")
    source_catalog = bundle.variables.get("promotion_source_catalog")
    if job is None or not source_catalog:
        return
    principal = _principal(job.get("run_as")) or "the deploying identity"
    sources = [other for other in bundles.values() if other.variables.get("catalog") == source_catalog]
    if not sources:
        yield Finding("grants", bundle.target, f"no target manages the source catalog {source_catalog!r}")
    for source in sources:
        for key, model in source.resources.get("registered_models", {}).items():
            if not _grants(model, principal, "EXECUTE"):
                yield Finding(
                    "grants",
                    bundle.target,
                    f"model_promotion_job copies from {source.target}'s registered_models.{key} "
                    f"({source.model_full_name(key)}) as {principal!r}, but {source.target} does not grant it "
                    "EXECUTE there (and a deploy revokes grants made by hand)",
                )


def _grants(resource: dict, principal: str, privilege: str) -> bool:
    return any(
        grant.get("principal") == principal and privilege in (grant.get("privileges") or [])
        for grant in resource.get("grants", []) or []
    )


# --- 4. prevent_destroy ----------------------------------------------------------------


def prevent_destroy(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """Models and experiments of production targets have ``lifecycle.prevent_destroy: true``.

    Policy, resting on ``phases/plan.go`` (``checkForPreventDestroy``: with it, a plan that
    deletes or recreates the resource stops, and ``bundle destroy`` is refused). Without
    it, changing the model's name, catalog or schema plans a delete and a create
    (``direct/dresources/resources.yml``; ``phases/deploy.go`` asks no confirmation for
    registered models), and Unity Catalog refuses to delete a model that has versions, so
    the deploy fails half-way. Renaming the experiment is an in-place update either way.
    """
    if bundle.mode != "production":
        return
    for kind in PROTECTED_TYPES:
        for key, resource in bundle.resources.get(kind, {}).items():
            if (resource.get("lifecycle") or {}).get("prevent_destroy") is not True:
                yield Finding(
                    "prevent-destroy",
                    bundle.target,
                    f"{kind}.{key} has no lifecycle.prevent_destroy: true; renaming the model or moving it to "
                    "another catalog or schema would delete and recreate it (a delete Unity Catalog refuses "
                    "once it has versions)",
                )


# --- 5. Root path and experiment folders ----------------------------------------------


def workspace_paths(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """Deployed roots only their principal can write; experiments in a folder that exists.

    Mirrors (the shared root) and policy (the rest): ``config/mutator/resourcemutator/validate_target_mode.go``
    (``validateProductionMode``/``isExplicitRootSet``: production needs the target's own
    ``workspace.root_path``; its advice is ``/Workspace/Users/<principal>/.bundle/...``) and
    ``permissions/validate.go`` (``ValidateSharedRootPermissions``: a root under
    ``/Workspace/Shared`` is writable by all users; ``permissions/workspace_root.go`` does not
    narrow it). Experiments: the CLI creates only the root's own folders and the
    experiments API needs an existing parent, so an experiment belongs directly in the
    root path (or a user's home folder), never under ``/Workspace/Shared``.
    """
    root = str(bundle.workspace.get("root_path", ""))
    if bundle.mode == "production" and not (bundle.target_settings.get("workspace") or {}).get("root_path"):
        yield Finding("root-path", bundle.target, "mode: production without the target's own workspace.root_path")
    if _shared(root):
        yield Finding("root-path", bundle.target, f"root_path {root} is writable by every workspace user")
    if _deployed(bundle):
        owners = {_principal(job.get("run_as")) for job in bundle.jobs.values()} - {""}
        for owner in sorted(owners) or [""]:
            if not root.startswith(f"/Workspace/Users/{owner}/") or not owner:
                yield Finding(
                    "root-path",
                    bundle.target,
                    f"root_path {root} is not under /Workspace/Users/{owner or '<service principal>'}/, "
                    "the home folder of the principal the jobs run as",
                )
    for key, experiment in bundle.resources.get("experiments", {}).items():
        name = str(experiment.get("name", ""))
        parent = name.rsplit("/", 1)[0]
        if _shared(name):
            yield Finding("experiment-path", bundle.target, f"experiments.{key} {name} is under /Workspace/Shared")
        elif parent != root and not (parent.startswith("/Workspace/Users/") and parent.count("/") == 3):
            yield Finding(
                "experiment-path",
                bundle.target,
                f"experiments.{key}: folder {parent} may not exist when the experiment is created; "
                "put it directly in ${workspace.root_path}",
            )


def _shared(path: str) -> bool:
    """``libraries.IsWorkspaceSharedPath``: under /Workspace/Shared (or /Shared)."""
    return path.startswith(("/Workspace/Shared/", "/Shared/")) or path in ("/Workspace/Shared", "/Shared")


# --- 6. Permission overlap -------------------------------------------------------------


def permission_overlap(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """No resource permission for a principal the top-level permissions already cover.

    Mirrors ``config/mutator/resourcemutator/apply_bundle_permissions.go``
    (``convertPermissions``/``isPermissionOverlap``): for each top-level permission whose
    level applies to the resource type, a resource permission naming the same group, user
    or service principal is a warning, an error under ``--strict``.
    """
    top = bundle.config.get("permissions") or []
    for kind, resources in bundle.resources.items():
        levels = LEVELS.get(kind)
        if not levels:
            continue
        for key, resource in resources.items():
            for granted in top:
                if granted.get("level") not in levels:
                    continue
                for own in resource.get("permissions", []) or []:
                    for field in ("group_name", "user_name", "service_principal_name"):
                        if own.get(field) and own.get(field) == granted.get(field):
                            yield Finding(
                                "permission-overlap",
                                bundle.target,
                                f"'{kind}' already has permissions set for {own[field]!r} ({kind}.{key}); "
                                "the target's permissions cover it: remove the resource's entry",
                            )


# --- 7. Failure notifications ----------------------------------------------------------


def failure_notifications(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """Every deployed job e-mails ``var.notification_emails`` on failure.

    Policy. Jobs run by a service principal notify nobody unless ``email_notifications`` or
    ``webhook_notifications`` say so (the CLI adds none: ``ApplyPresets`` in
    ``config/mutator/resourcemutator/apply_presets.go`` touches names, tags, schedules and
    concurrency only).
    """
    emails = bundle.variables.get("notification_emails") or []
    if isinstance(emails, str):
        emails = [e.strip() for e in emails.split(",") if e.strip()]
    if not emails or not _deployed(bundle):
        return
    for key, job in bundle.jobs.items():
        on_failure = (job.get("email_notifications") or {}).get("on_failure") or []
        missing = [e for e in emails if e not in on_failure]
        if missing:
            yield Finding(
                "failure-notifications",
                bundle.target,
                f"jobs.{key}: email_notifications.on_failure lacks {', '.join(missing)}",
            )


# --- 8. Wheel versions -----------------------------------------------------------------


def dynamic_version(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """Every wheel artifact builds a unique version.

    Policy, resting on ``artifacts/build.go`` (``Build``) and ``config/mutator/artifacts_dynamic_version.go``: only with
    ``artifacts.<name>.dynamic_version`` (or ``presets.artifacts_dynamic_version``) does the
    CLI patch the wheel's version per build; otherwise a serverless environment may reuse
    a cached wheel of the same version and run stale code.
    """
    if (bundle.config.get("presets") or {}).get("artifacts_dynamic_version"):
        return
    for name, artifact in (bundle.config.get("artifacts") or {}).items():
        if artifact.get("type") == "whl" and artifact.get("dynamic_version") is not True:
            yield Finding("dynamic-version", bundle.target, f"artifacts.{name}: a whl without dynamic_version: true")


# --- 9. Traceability -------------------------------------------------------------------


def traceability(bundle: ResolvedBundle, bundles: Bundles) -> Iterator[Finding]:
    """Jobs carry project/target/pattern tags; tasks that make model versions get the provenance.

    Policy, resting on ``config/mutator/resourcemutator/apply_presets.go`` (``presets.tags`` land on
    every job) and ``config/mutator/load_git_details.go`` (``bundle.git.commit``): the
    ``train`` and ``copy_model`` tasks must receive ``git_commit``, ``target`` and
    ``job_run_id``, so every model version names the commit, target and run that made it.
    """
    for key, job in bundle.jobs.items():
        tags = job.get("tags") or {}
        missing = [t for t in TRACE_TAGS if not tags.get(t)]
        if missing:
            yield Finding("traceability", bundle.target, f"jobs.{key}: no tag {', '.join(missing)}")
        elif tags["target"] != bundle.target:
            yield Finding("traceability", bundle.target, f"jobs.{key}: tag target={tags['target']!r}")
        for task in job.get("tasks", []) or []:
            wheel = task.get("python_wheel_task") or {}
            if wheel.get("entry_point") not in VERSION_MAKERS:
                continue
            named = wheel.get("named_parameters") or {}
            absent = [p for p in TRACE_PARAMETERS if p not in named]
            if absent:
                yield Finding(
                    "traceability",
                    bundle.target,
                    f"jobs.{key}.{task['task_key']}: no {', '.join(absent)} parameter",
                )
            elif named["target"] != bundle.target or "{{job.run_id}}" not in named["job_run_id"]:
                yield Finding("traceability", bundle.target, f"jobs.{key}.{task['task_key']}: wrong provenance")


RULES: tuple[Callable[[ResolvedBundle, Bundles], Iterator[Finding]], ...] = (
    uc_grant_principals,
    run_as,
    promotion_grants,
    prevent_destroy,
    workspace_paths,
    permission_overlap,
    failure_notifications,
    dynamic_version,
    traceability,
)


# What each rule is (see the module docstring): mirrored from the CLI, found by its server, or policy.
KINDS = {
    "uc-grant-principal": "mirrors (empty grants), server (workspace-local groups)",
    "run-as": "mirrors (target-level run_as), policy (a job's own run_as)",
    "grants": "policy",
    "prevent-destroy": "policy",
    "root-path": "mirrors (/Workspace/Shared), policy (the principal's home folder)",
    "experiment-path": "server",
    "permission-overlap": "mirrors",
    "failure-notifications": "policy",
    "dynamic-version": "policy",
    "traceability": "policy",
}


def check(bundles: Bundles) -> list[Finding]:
    """Every finding of every rule in every target."""
    return [finding for bundle in bundles.values() for rule in RULES for finding in rule(bundle, bundles)]
