"""Registry look-ups with errors that say what to do next."""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .names import ModelRef
from .runtime import JobError


def _not_found(error: MlflowException) -> bool:
    return error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def model_exists(client: MlflowClient, model_ref: ModelRef) -> bool:
    try:
        client.get_registered_model(model_ref.full_name)
        return True
    except MlflowException as error:
        if _not_found(error):
            return False
        raise


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
        what = "does not exist" if not model_exists(client, model_ref) else f"has no {alias!r} alias"
        raise JobError(f"{model_ref.full_name} {what}. {hint}")
    return version
