"""The serving endpoint follows the champion: create, update, nothing to do, rollback, removal.

There is no workspace here: ``mlops_local.workspace`` is an HTTP server standing in for one,
and a real ``databricks-sdk`` ``WorkspaceClient`` talks to it, so the requests below are
the SDK's own serialization of the request types (see mlops_local/workspace.py).
"""

import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from helpers import model_args, register_small_version
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlops_local.scoring_server import ServingError, scoring_server, served_version, smoke_test
from mlops_local.workspace import local_endpoint
from test_model_lifecycle import validate_args

from my_mlops_project import deploy, serving, train, validate
from my_mlops_project.names import CHALLENGER, CHAMPION, ModelRef
from my_mlops_project.registry import alias_version
from my_mlops_project.runtime import JobError, local_dir

MODEL = ModelRef("prod", "ml", "model")
LISTED_REQUIREMENTS = train.pip_requirements()
ENDPOINTS = "/api/2.0/serving-endpoints"


def spec(version: str, **changes) -> serving.EndpointSpec:
    return serving.EndpointSpec(**{"name": "model-prod", "model": MODEL, "version": version, **changes})


def test_a_missing_endpoint_is_created_serving_the_champion(workspace):
    w, stand_in = workspace
    assert serving.sync_endpoint(w, spec("3", scale_to_zero=False, read_group="readers")) == serving.CREATED
    create = next(c for c in stand_in.calls if c.method == "POST")
    assert create.path == ENDPOINTS
    assert create.body["config"]["served_entities"] == [
        {
            "entity_name": "prod.ml.model",
            "entity_version": "3",
            "workload_size": "Small",
            "scale_to_zero_enabled": False,
        }
    ]
    assert create.body["ai_gateway"] == {
        "inference_table_config": {
            "catalog_name": "prod",
            "schema_name": "ml",
            "table_name_prefix": "model",
            "enabled": True,
        },
        "usage_tracking_config": {"enabled": True},
    }
    endpoint_id = stand_in.endpoints["model-prod"]["id"]
    grant = stand_in.calls[-1]
    assert (grant.method, grant.path) == ("PATCH", f"/api/2.0/permissions/serving-endpoints/{endpoint_id}")
    assert grant.body == {"access_control_list": [{"group_name": "readers", "permission_level": "CAN_QUERY"}]}


def test_the_same_champion_changes_nothing_but_a_new_size_updates(workspace):
    w, stand_in = workspace
    serving.sync_endpoint(w, spec("3"))
    stand_in.calls.clear()
    assert serving.sync_endpoint(w, spec("3")) == serving.UNCHANGED
    assert [method for method, _ in stand_in.writes()] == ["PATCH"]  # only the (idempotent) grant
    assert serving.sync_endpoint(w, spec("3", workload_size="Medium")) == serving.UPDATED
    assert ("PUT", f"{ENDPOINTS}/model-prod/config") in stand_in.writes()


def test_payload_logging_is_switched_on_for_an_endpoint_without_it(workspace):
    w, stand_in = workspace
    serving.sync_endpoint(w, spec("3", log_payloads=False))
    assert stand_in.endpoints["model-prod"]["ai_gateway"] is None
    stand_in.calls.clear()
    assert serving.sync_endpoint(w, spec("3")) == serving.UNCHANGED
    put = next(c for c in stand_in.calls if c.path.endswith("/ai-gateway"))
    assert put.body["inference_table_config"]["table_name_prefix"] == "model"
    assert spec("3").payload_table == "prod.ml.model_payload"


def _deploy_new_version(model_ref) -> str:
    """A new version through the real deploy step (validation is tested elsewhere)."""
    version = register_small_version(model_ref)
    MlflowClient().set_registered_model_alias(model_ref.full_name, CHALLENGER, version)
    deploy.main(model_args(model_ref))
    return version


def test_the_endpoint_follows_deploy_and_rollback(workspace, fresh_model, monkeypatch):
    """Real registry moves (deploy, rollback); the endpoint follows each, through ``sync_endpoint``
    with a given client and through the job's entry point with the local stand-in workspace."""
    w, stand_in = workspace
    model_ref = fresh_model
    args = [*model_args(model_ref), "--endpoint_name=model-test", "--read_group=users"]
    client = MlflowClient()

    def sync() -> str:
        version = alias_version(client, model_ref, CHAMPION)
        return serving.sync_endpoint(w, serving.EndpointSpec("model-test", model_ref, version))

    def served() -> str:
        return stand_in.endpoints["model-test"]["config"]["served_entities"][0]["entity_version"]

    first = _deploy_new_version(model_ref)
    assert sync() == serving.CREATED and served() == first
    assert serving.main(args) == serving.CREATED  # the local run's own stand-in workspace
    second = _deploy_new_version(model_ref)
    assert sync() == serving.UPDATED and served() == second
    assert serving.main(args) == serving.UPDATED
    assert served_locally("model-test") == second

    deploy.rollback(model_args(model_ref))
    assert sync() == serving.UPDATED and served() == first
    assert serving.main(args) == serving.UPDATED
    assert served_locally("model-test") == first
    assert serving.main(args) == serving.UNCHANGED

    # Removal, as the README documents it: the same entry point in both workspaces.
    monkeypatch.setattr(serving, "workspace_client", lambda: w)
    assert serving.remove(["--endpoint_name=model-test"]) is True
    assert ("DELETE", f"{ENDPOINTS}/model-test") in stand_in.writes()
    assert serving.remove(["--endpoint_name=model-test"]) is False
    monkeypatch.undo()
    assert serving.remove(["--endpoint_name=model-test"]) is True
    assert served_locally("model-test") is None


def served_locally(name: str) -> str | None:
    """The version the local stand-in workspace's endpoint ``name`` serves, as a later process sees it."""
    return served_version(local_endpoint(local_dir(), name))


def test_nothing_to_serve_without_a_champion(fresh_model):
    with pytest.raises(JobError, match="Nothing to serve"):
        serving.main([*model_args(fresh_model), "--endpoint_name=x", "--read_group=users"])


@pytest.mark.parametrize("name", ["", "-starts-with-dash", "has space", "x" * 64, "dots.not.allowed"])
def test_endpoint_names_are_checked(name):
    with pytest.raises(JobError, match="endpoint_name"):
        spec("1", name=name)


# --- Nothing unservable becomes challenger -------------------------------------------


with warnings.catch_warnings():  # MLflow suggests type hints; the explicit signature below is the point
    warnings.simplefilter("ignore")

    class _Unservable(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            raise ValueError("this model cannot predict")


def _log(model_ref, **kwargs) -> str:
    X = pd.DataFrame({"trip_distance": [1.0, 2.0, 3.0]})
    signature = infer_signature(X, np.array([3.0, 5.0, 7.0]))
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            signature=signature,
            registered_model_name=model_ref.full_name,
            pip_requirements=LISTED_REQUIREMENTS,
            **kwargs,
        )
    return str(info.registered_model_version)


def test_validation_refuses_a_version_that_fails_its_own_serving_input(fresh_model):
    version = _log(fresh_model, python_model=_Unservable(), input_example=pd.DataFrame({"trip_distance": [1.0]}))
    with pytest.raises(JobError, match="cannot be served: a serving request made of its own input example fails"):
        validate.main(validate_args(fresh_model, version))
    assert alias_version(MlflowClient(), fresh_model, CHALLENGER) is None


def test_validation_refuses_a_version_without_an_input_example(fresh_model):
    version = _log(fresh_model, python_model=_Unservable())
    with pytest.raises(JobError, match="has no input example"):
        validate.main(validate_args(fresh_model, version))


# --- The local scoring server --------------------------------------------------------


def test_serving_a_model_that_does_not_exist_names_it(fresh_model):
    uri = fresh_model.uri(alias=CHAMPION)
    with pytest.raises(ServingError, match=f"cannot download {uri}"):
        with scoring_server(uri):
            pass


@pytest.mark.slow  # starts MLflow's scoring server
def test_the_champion_is_served_locally_and_the_server_stops_when_a_step_fails(fresh_model):
    """The smoke test of the local scenario (which serves the trained model), on a small model."""
    _deploy_new_version(fresh_model)
    uri = fresh_model.uri(alias=CHAMPION)
    with pytest.raises(RuntimeError, match="a later step failed"):
        with scoring_server(uri) as url:
            result = smoke_test(url, uri)
            assert result.rows == 3 and result.max_difference < 1e-9
            assert result.malformed_status == 400 and "no_such_feature" in result.malformed_message
            raise RuntimeError("a later step failed")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/ping", timeout=2)
