"""Deploy: make the validated ``challenger`` the ``champion``; roll back to the previous one.

Deploying records the champion it replaces as the tag ``previous_champion`` on the new
champion, moves ``champion`` (the single step that changes what serves), then removes
``challenger``. Rolling back points ``champion`` at the recorded previous version; when the
champion is the model's first there is nothing to roll back to, which the task says and
ends successfully with ``champion`` unchanged. No version is ever deleted.
"""

from __future__ import annotations

import datetime as dt

from mlflow.tracking import MlflowClient

from . import params
from .names import CHALLENGER, CHAMPION
from .registry import alias_version, get_version, require_alias
from .runtime import configure_mlflow

PREVIOUS = "previous_champion"


def build_parser(prog="deploy", description="Move the champion alias to the validated challenger."):
    p = params.parser(prog, description)
    params.add_model(p)
    return p


def build_rollback_parser():
    return build_parser("rollback", "Point the champion alias back at the previous champion.")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    configure_mlflow()
    client = MlflowClient()
    challenger = require_alias(client, model_ref, CHALLENGER, "Nothing to deploy: run the validation task first.")
    previous = alias_version(client, model_ref, CHAMPION)
    name = model_ref.full_name
    if previous != challenger:
        client.set_model_version_tag(name, challenger, PREVIOUS, previous or "none")
        client.set_registered_model_alias(name, CHAMPION, challenger)
        client.set_model_version_tag(name, challenger, "deployed_at", _now())
    client.delete_registered_model_alias(name, CHALLENGER)
    if previous == challenger:
        print(f"{name} v{challenger} already was {CHAMPION}; removed {CHALLENGER}")
    else:
        print(f"{name}: {CHAMPION} is now v{challenger} (previously {'v' + previous if previous else 'none'})")
    return challenger


@params.entry_point(build_rollback_parser)
def rollback(argv: list[str] | None = None) -> str:
    args = build_rollback_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    configure_mlflow()
    client = MlflowClient()
    name = model_ref.full_name
    current = require_alias(client, model_ref, CHAMPION, "Nothing to roll back: no version serves yet.")
    previous = get_version(client, model_ref, current).tags.get(PREVIOUS, "none")
    if previous == "none":
        print(f"{name}: nothing to roll back; v{current} is the first {CHAMPION} and stays {CHAMPION}")
        return current
    get_version(client, model_ref, previous)
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, current, "rolled_back_at", _now())
    print(f"{name}: rolled back {CHAMPION} from v{current} to v{previous}")
    return previous


if __name__ == "__main__":
    main()
