"""Promotion: copy a model version between catalogs, the approval gate, and what to do on drift.

``copy_model`` copies ``<source model>`` at a version (default: its ``champion``) into
this environment's model with ``MlflowClient.copy_model_version`` and records where it
came from in the tag ``source_model_version`` (``models:/<source>/<version>``), and the
commit, target and job run of the promotion (``git_commit``, ``target``, ``job_run_id``;
the source version keeps those of the run that trained it). A source
version that was copied before is reused, so re-running a failed promotion never makes
a duplicate. The copied version is published as the task value ``model_version``.

``approval_gate`` passes when no approval is required; when the run carries an approval
given in CI (job parameters ``approved_by`` / ``approval_run``, which the approval-gated CI
job passes), which it records on the version as the tags ``approval=approved``,
``approved_by`` and ``approval_run``; or when the version already carries the tag
``approval=approved`` (the MLflow 3 deployment-job convention: a tag named after the
approval task, value ``approved`` compared case-insensitively, as Catalog Explorer's
approve action sets it). It prints why either way.

Only whoever may run the prod promotion job can pass ``approved_by``: in prod that is the
prod service principal (the job's only CAN_MANAGE holder), which only the approval-gated
CI job signs in as.

``retraining_needed`` is the monitoring job's task in targets that cannot train (all but
dev in deploy models, prod in hybrid): it fails with a message naming what to run where,
so the job's failure notification reaches the team.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from . import params
{%- if cookiecutter.include_feature_store %}
from .feature_store import relog
{%- endif %}
from .names import CHAMPION, ModelRef
from .registry import add_provenance_arguments, get_version, provenance, require_alias, tag_version
from .runtime import JobError, configure_mlflow, set_task_value

SOURCE_TAG = "source_model_version"
APPROVAL_TAG = "approval"  # the approval task's key: the deployment-job convention
APPROVED = "approved"
APPROVED_BY_TAG = "approved_by"
APPROVAL_RUN_TAG = "approval_run"


def build_copy_parser():
    p = params.parser("copy_model", "Copy a model version from another catalog into this one.")
    p.add_argument("--source_model", required=True, help="<catalog>.<schema>.<model> to copy from")
    p.add_argument("--source_version", default="", help="version to copy (empty: the source's champion)")
    params.add_model(p)
    add_provenance_arguments(p)
{%- if cookiecutter.include_feature_store %}
    # The rows whose features the copy is logged again with (this catalog's feature tables);
    # empty training_end_date: the source version's tag training_end_date.
    from .model import SOURCE_TABLE  # here, as params.add_training_data does

    p.add_argument("--training_table", default=SOURCE_TABLE)
    p.add_argument("--training_end_date", default="")
    p.add_argument("--sample_fraction", type=float, default=1.0)
{%- endif %}
    return p


def build_approval_parser():
    p = params.parser("approval_gate", "Stop unless the model version is approved.")
    params.add_model(p)
    p.add_argument("--model_version", required=True)
    p.add_argument("--approval_required", type=params.boolean, default=True)
    p.add_argument("--approved_by", default="", help="who approved in CI (set by the approval-gated CI job)")
    p.add_argument("--approval_run", default="", help="the CI run that holds the approval")
    return p


def build_retraining_needed_parser():
    p = params.parser("retraining_needed", "Fail with instructions where training cannot run.")
    p.add_argument("--model_name", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--pattern", required=True, choices=("deploy_code", "deploy_models", "hybrid"))
    return p


def find_copy(client: MlflowClient, destination: ModelRef, source_uri: str) -> str | None:
    """The destination version copied from ``source_uri`` earlier, if any."""
    for found in client.search_model_versions(f"name='{destination.full_name}'"):
        # Unity Catalog search results may omit tags: read each version in full.
        version = get_version(client, destination, str(found.version))
        if version.tags.get(SOURCE_TAG) == source_uri or version.source == source_uri:
            return str(version.version)
    return None


@params.entry_point(build_copy_parser)
def copy_model(argv: list[str] | None = None) -> str:
    args = build_copy_parser().parse_args(argv)
    destination = params.model_ref(args)
    if not args.source_model.strip():
        raise JobError(
            "source_model is empty: pass the model to copy from, e.g. databricks bundle run model_promotion_job "
            "--params source_model=<catalog>.<schema>.<model> (a developer's dev model is "
            "dev.<schema>.dev_<user>_<model>: development mode prefixes it)"
        )
    try:
        source = ModelRef.parse(args.source_model)
    except ValueError as error:
        raise JobError(f"source_model: {error}") from None
    if source == destination:
        raise JobError(f"source_model {source.full_name} is this environment's own model")
    configure_mlflow()
    client = MlflowClient()
    hint = (
        f"Train and deploy it in the {source.catalog} catalog first "
        f"(model_training_job, or model_promotion_job where that environment promotes)."
    )
    if args.source_version:
        get_version(client, source, args.source_version)
        source_version = args.source_version
    else:
        source_version = require_alias(client, source, CHAMPION, hint)
    source_uri = source.uri(source_version)

    existing = find_copy(client, destination, source_uri)
    if existing is not None:
        version = existing
        print(f"{source_uri} was already copied to {destination.full_name} v{version}; reusing it")
    else:
{%- if cookiecutter.include_feature_store %}
        # Not copy_model_version: the copy's feature spec would name the source catalog's feature
        # tables. The source's fitted model is logged again with this catalog's (feature_store.relog).
        end = args.training_end_date or get_version(client, source, source_version).tags.get("training_end_date", "")
        version = relog(source_uri, destination, args.training_table, end, args.sample_fraction)
        client.set_model_version_tag(destination.full_name, version, "training_end_date", end)
        print(f"Logged {source_uri} into {destination.full_name} v{version} with its catalog's feature tables")
{%- else %}
        copied = client.copy_model_version(source_uri, destination.full_name)
        version = str(copied.version)
        print(f"Copied {source_uri} to {destination.full_name} v{version}")
{%- endif %}
    client.set_model_version_tag(destination.full_name, version, SOURCE_TAG, source_uri)
    tag_version(client, destination, version, provenance(args))
    set_task_value("model_version", version)
    return version


def approve(model_full_name: str, version: str) -> None:
    """Record a reviewer's approval of a model version (what the approval gate checks)."""
    try:
        model_ref = ModelRef.parse(model_full_name)
    except ValueError as error:
        raise JobError(str(error)) from None
    client = MlflowClient()
    get_version(client, model_ref, str(version))  # a clear error when there is no such version
    client.set_model_version_tag(model_ref.full_name, str(version), APPROVAL_TAG, APPROVED)


@params.entry_point(build_approval_parser)
def approval_gate(argv: list[str] | None = None) -> None:
    args = build_approval_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    if not args.approval_required:
        print(f"Approval gate off (approval_required=false): {model_ref.full_name} v{args.model_version} continues")
        return
    configure_mlflow()
    client = MlflowClient()
    tags = get_version(client, model_ref, args.model_version).tags
    approved_by, approval_run = args.approved_by.strip(), args.approval_run.strip()
    if approved_by or approval_run:
        if not (approved_by and approval_run):
            raise JobError(
                "approved_by and approval_run go together: an approval given in CI names who approved "
                f"and the CI run (got approved_by={approved_by!r}, approval_run={approval_run!r})"
            )
        recorded = {APPROVAL_TAG: APPROVED, APPROVED_BY_TAG: approved_by, APPROVAL_RUN_TAG: approval_run}
        for key, value in recorded.items():
            client.set_model_version_tag(model_ref.full_name, args.model_version, key, value)
        print(
            f"{model_ref.full_name} v{args.model_version} approved in CI by {approved_by} ({approval_run}); "
            f"recorded as tags {', '.join(recorded)}: continuing"
        )
        return
    if str(tags.get(APPROVAL_TAG, "")).strip().lower() == APPROVED:
        print(f"{model_ref.full_name} v{args.model_version} is approved ({APPROVAL_TAG}={APPROVED}): continuing")
        return
    raise JobError(
        f"{model_ref.full_name} v{args.model_version} is not approved, so it was not deployed; "
        f"champion is unchanged. A reviewer approves it by setting the tag {APPROVAL_TAG}={APPROVED} "
        f"on that version (Catalog Explorer, or MlflowClient().set_model_version_tag("
        f"'{model_ref.full_name}', '{args.model_version}', '{APPROVAL_TAG}', '{APPROVED}')); "
        "then re-run the promotion job, which reuses the copy."
    )


if __name__ == "__main__":
    copy_model()


@params.entry_point(build_retraining_needed_parser)
def retraining_needed(argv: list[str] | None = None) -> None:
    args = build_retraining_needed_parser().parse_args(argv)
    if args.pattern == "hybrid":
        how = (
            "Retrain in staging on production data: databricks bundle run model_training_job -t staging, "
            "then promote: databricks bundle run model_promotion_job -t prod"
        )
    else:
        how = (
            "Retrain in dev: databricks bundle run model_training_job -t dev, then promote: "
            "databricks bundle run model_promotion_job -t staging, then -t prod"
        )
    raise JobError(
        f"Drift detected for {args.model_name} in {args.target}. The {args.pattern} pattern does not "
        f"train in {args.target}. {how}."
    )
