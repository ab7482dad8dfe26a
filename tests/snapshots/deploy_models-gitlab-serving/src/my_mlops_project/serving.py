"""Serve: make the model's serving endpoint serve exactly its current ``champion``.

The ``serve`` task runs after every step that moves ``champion``: ``deploy`` in the
training and promotion jobs, ``rollback`` in the rollback job. It reads the champion from
the registry and then

- creates the endpoint when it does not exist,
- updates its configuration when it serves another version (or size, or scaling),
- does nothing when it already serves the champion,

and in every case gives the read group ``CAN_QUERY`` and keeps payload logging (an AI
Gateway inference table ``<catalog>.<schema>.<model>_payload``) on. The endpoint is not
a bundle resource: a bundle cannot know the champion's version, so a deploy would put
back whatever version it was given. ``databricks bundle destroy`` therefore leaves it;
``remove_endpoint`` deletes it.

It calls the Serving Endpoints API through ``databricks-sdk`` as the job's identity
(``runtime.workspace_client``; locally, the stand-in workspace keeps the endpoint, and the
local scenario serves the champion with MLflow's scoring server, ``mlops_local.scoring_server``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from databricks.sdk.errors import NotFound
from databricks.sdk.service.serving import (
    AiGatewayConfig,
    AiGatewayInferenceTableConfig,
    AiGatewayUsageTrackingConfig,
    EndpointCoreConfigInput,
    EndpointStateConfigUpdate,
    EndpointTag,
    ServedEntityInput,
    ServingEndpointAccessControlRequest,
    ServingEndpointDetailed,
    ServingEndpointPermissionLevel,
)
from mlflow.tracking import MlflowClient

from . import params
from .names import CHAMPION, ModelRef
from .registry import require_alias
from .runtime import JobError, configure_mlflow, set_task_value, workspace_client

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
WORKLOAD_SIZES = ("Small", "Medium", "Large")
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
PAYLOAD_SUFFIX = "payload"


def build_parser():
    p = params.parser("serve", "Make the serving endpoint serve the model's champion.")
    params.add_model(p)
    p.add_argument("--endpoint_name", required=True, help="serving endpoint name (letters, digits, - and _)")
    p.add_argument("--workload_size", choices=WORKLOAD_SIZES, default="Small")
    p.add_argument("--scale_to_zero", type=params.boolean, default=True, help="scale to zero when idle")
    p.add_argument("--read_group", required=True, help="workspace group that gets CAN_QUERY")
    p.add_argument("--log_payloads", type=params.boolean, default=True, help="AI Gateway inference table")
    p.add_argument("--timeout_minutes", type=int, default=30, help="how long to wait for the endpoint")
    return p


def build_remove_parser():
    p = params.parser("remove_endpoint", "Delete the serving endpoint (bundle destroy does not).")
    p.add_argument("--endpoint_name", required=True)
    return p


@dataclass(frozen=True)
class EndpointSpec:
    """What the endpoint should be: one served entity, the champion, taking all traffic."""

    name: str
    model: ModelRef
    version: str
    workload_size: str = "Small"
    scale_to_zero: bool = True
    read_group: str = "users"
    log_payloads: bool = True

    def __post_init__(self):
        if not ENDPOINT_NAME.fullmatch(self.name):
            raise JobError(
                f"endpoint_name {self.name!r}: an endpoint name is 1 to 63 letters, digits, '-' or '_', "
                "starting with a letter or digit. Shorten the model name or set endpoint_name in the job."
            )
        if self.workload_size not in WORKLOAD_SIZES:
            raise JobError(f"workload_size {self.workload_size!r}: expected one of {', '.join(WORKLOAD_SIZES)}")

    def served(self) -> dict:
        """The served entity, as compared with what the endpoint reports."""
        return {
            "entity_name": self.model.full_name,
            "entity_version": str(self.version),
            "workload_size": self.workload_size,
            "scale_to_zero_enabled": self.scale_to_zero,
        }

    def entity(self) -> ServedEntityInput:
        return ServedEntityInput(**self.served())

    def gateway(self) -> dict | None:
        """Payload and usage logging, as compared with what the endpoint reports (None: not managed)."""
        if not self.log_payloads:
            return None
        return {
            "inference_table": {
                "catalog_name": self.model.catalog,
                "schema_name": self.model.schema,
                "table_name_prefix": self.model.name,
                "enabled": True,
            },
            "usage_tracking": True,
        }

    def ai_gateway(self) -> AiGatewayConfig | None:
        wanted = self.gateway()
        if wanted is None:
            return None
        return AiGatewayConfig(
            inference_table_config=AiGatewayInferenceTableConfig(**wanted["inference_table"]),
            usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True),
        )

    @property
    def payload_table(self) -> str:
        """The table the AI Gateway writes requests and responses to (``<prefix>_payload``)."""
        return self.model.table(PAYLOAD_SUFFIX)


def plan(current: dict | None, wanted: dict) -> str:
    """What to do to the endpoint: create it, update its config, or nothing."""
    if current is None:
        return CREATED
    return UNCHANGED if current == wanted else UPDATED


def served_now(endpoint: ServingEndpointDetailed) -> dict:
    """The served entity the endpoint has (or is updating to); {} when it is not one entity."""
    config = endpoint.pending_config or endpoint.config
    entities = (config.served_entities if config else None) or []
    if len(entities) != 1:
        return {}
    entity = entities[0]
    return {
        "entity_name": entity.entity_name,
        "entity_version": str(entity.entity_version),
        "workload_size": entity.workload_size,
        "scale_to_zero_enabled": bool(entity.scale_to_zero_enabled),
    }


def gateway_now(endpoint: ServingEndpointDetailed) -> dict:
    gateway = endpoint.ai_gateway
    table = gateway.inference_table_config if gateway else None
    usage = gateway.usage_tracking_config if gateway else None
    return {
        "inference_table": {
            "catalog_name": table.catalog_name,
            "schema_name": table.schema_name,
            "table_name_prefix": table.table_name_prefix,
            "enabled": bool(table.enabled),
        }
        if table
        else None,
        "usage_tracking": bool(usage and usage.enabled),
    }


def sync_endpoint(w, spec: EndpointSpec, timeout: dt.timedelta = dt.timedelta(minutes=30)) -> str:
    """Make the workspace's endpoint ``spec.name`` match ``spec``; return what was done."""
    try:
        endpoint = w.serving_endpoints.get(spec.name)
    except NotFound:
        endpoint = None
    action = plan(None if endpoint is None else served_now(endpoint), spec.served())
    if action == CREATED:
        endpoint = w.serving_endpoints.create_and_wait(
            spec.name,
            config=EndpointCoreConfigInput(name=spec.name, served_entities=[spec.entity()]),
            ai_gateway=spec.ai_gateway(),
            tags=[EndpointTag(key="model", value=spec.model.full_name)],
            timeout=timeout,
        )
    else:
        if action == UPDATED:
            if endpoint.state and endpoint.state.config_update == EndpointStateConfigUpdate.IN_PROGRESS:
                w.serving_endpoints.wait_get_serving_endpoint_not_updating(spec.name, timeout=timeout)
            endpoint = w.serving_endpoints.update_config_and_wait(
                spec.name, served_entities=[spec.entity()], timeout=timeout
            )
        wanted = spec.gateway()
        if wanted is not None and gateway_now(endpoint) != wanted:
            gateway = spec.ai_gateway()
            w.serving_endpoints.put_ai_gateway(
                spec.name,
                inference_table_config=gateway.inference_table_config,
                usage_tracking_config=gateway.usage_tracking_config,
            )
    w.serving_endpoints.update_permissions(
        endpoint.id,
        access_control_list=[
            ServingEndpointAccessControlRequest(
                group_name=spec.read_group, permission_level=ServingEndpointPermissionLevel.CAN_QUERY
            )
        ],
    )
    return action


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    configure_mlflow()
    version = require_alias(MlflowClient(), model_ref, CHAMPION, "Nothing to serve: run the deploy task first.")
    spec = EndpointSpec(
        args.endpoint_name,
        model_ref,
        version,
        args.workload_size,
        args.scale_to_zero,
        args.read_group,
        args.log_payloads,
    )
    action = sync_endpoint(workspace_client(), spec, dt.timedelta(minutes=args.timeout_minutes))
    what = {CREATED: "created, serving", UPDATED: "updated to serve", UNCHANGED: "already serves"}[action]
    print(f"Endpoint {spec.name} {what} {model_ref.full_name} v{version}; {spec.read_group}: CAN_QUERY")
    set_task_value("served_version", version)
    return action


@params.entry_point(build_remove_parser)
def remove(argv: list[str] | None = None) -> bool:
    """Delete the endpoint; True if there was one."""
    args = build_remove_parser().parse_args(argv)
    try:
        workspace_client().serving_endpoints.delete(args.endpoint_name)
        existed = True
    except NotFound:
        existed = False
    print(f"Endpoint {args.endpoint_name}: {'deleted' if existed else 'did not exist'}")
    return existed


if __name__ == "__main__":
    main()
