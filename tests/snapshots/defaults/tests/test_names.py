import pytest

from my_mlops_project.names import ModelRef


def test_full_name_uri_and_tables():
    model = ModelRef("prod", "ml", "model")
    assert model.full_name == "prod.ml.model"
    assert model.uri(3) == "models:/prod.ml.model/3"
    assert model.uri(alias="champion") == "models:/prod.ml.model@champion"
    assert model.predictions_table == "prod.ml.model_predictions"
    assert model.monitoring_table == "prod.ml.model_monitoring"


def test_parse_round_trips_and_rejects_partial_names():
    assert ModelRef.parse("dev.ml.dev_alice_model") == ModelRef("dev", "ml", "dev_alice_model")
    for bad in ("ml.model", "a..b", "a.b.c.d"):
        with pytest.raises(ValueError, match="<catalog>.<schema>.<model>"):
            ModelRef.parse(bad)
