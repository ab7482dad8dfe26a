import pytest
from helpers import bundle_date, model_args
from pyspark.sql import functions as F

from my_mlops_project import batch_inference, model
from my_mlops_project.runtime import JobError, read_table


def test_scores_with_the_champion_and_appends(spark, champion):
    model_ref, version = champion
    score_from = str(bundle_date("score_from_date"))
    args = [*model_args(model_ref), f"--input_table={model.SOURCE_TABLE}", f"--score_from_date={score_from}"]
    first = batch_inference.main(args)
    assert first > 0
    batch_inference.main(args)
    table = read_table(spark, model_ref.predictions_table)
    assert table.count() == 2 * first  # appended, not overwritten
    assert {model.TIMESTAMP, *model.FEATURES, model.LABEL} <= set(table.columns)
    expected = spark.createDataFrame([], f"prediction {model.PREDICTION_TYPE}").schema["prediction"]
    assert table.schema["prediction"].dataType == expected.dataType
    row = table.select("model_name", "model_version", "scored_at", "prediction").first()
    assert row["model_name"] == model_ref.full_name and row["model_version"] == version
    assert row["scored_at"] is not None and row["prediction"] is not None
    assert table.where(F.to_date(model.TIMESTAMP) < F.lit(score_from)).count() == 0


def test_without_a_champion_it_says_what_to_run(fresh_model):
    with pytest.raises(JobError, match="does not exist. Run the training job"):
        batch_inference.main([*model_args(fresh_model), f"--score_from_date={bundle_date('score_from_date')}"])
