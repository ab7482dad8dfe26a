"""Registry look-ups with errors that say what to do next."""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .names import ModelRef
from .runtime import JobError


def _not_found(error: MlflowException) -> bool:
    return error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def alias_version(client: MlflowClient, model_ref: ModelRef, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the model or the alias is missing."""
    try:
        return str(client.get_model_version_by_alias(model_ref.full_name, alias).version)
    except MlflowException as error:
        if _not_found(error):
            return None
        raise


def get_version(client: MlflowClient, model_ref: ModelRef, version: str) -> ModelVersion:
    try:
        return client.get_model_version(model_ref.full_name, str(version))
    except MlflowException as error:
        if _not_found(error):
            raise JobError(f"{model_ref.full_name} has no version {version!r}") from error
        raise


def require_alias(client: MlflowClient, model_ref: ModelRef, alias: str, hint: str) -> str:
    """The version ``alias`` points at; a clear error naming the model and ``hint`` if none."""
    version = alias_version(client, model_ref, alias)
    if version is None:
        try:
            client.get_registered_model(model_ref.full_name)
            what = f"has no {alias!r} alias"
        except MlflowException as error:
            if not _not_found(error):
                raise
            what = "does not exist"
        raise JobError(f"{model_ref.full_name} {what}. {hint}")
    return version


# --- Provenance: which commit, target and job run produced a model version ------------

PROVENANCE_TAGS = ("git_commit", "target", "job_run_id")


def add_provenance_arguments(p) -> None:
    """``--git_commit``, ``--target`` and ``--job_run_id``: what the bundle passes for traceability."""
    p.add_argument("--git_commit", default="", help="commit the job's code was deployed from")
    p.add_argument("--target", default="", help="bundle target the job runs in")
    p.add_argument("--job_run_id", default="", help="run of the job ({{job.run_id}})")


def provenance(args) -> dict[str, str]:
    """The provenance tags of ``args`` that have a value."""
    return {name: str(getattr(args, name)) for name in PROVENANCE_TAGS if getattr(args, name, "")}


def tag_version(client: MlflowClient, model_ref: ModelRef, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_ref.full_name, str(version), key, value)
