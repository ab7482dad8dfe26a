"""Command-line arguments the tests pass to entry points, as the bundle would, and test doubles."""

from __future__ import annotations

import math


def model_args(model_ref) -> list[str]:
    return [f"--catalog={model_ref.catalog}", f"--schema={model_ref.schema}", f"--model_name={model_ref.name}"]


def data_args(end: str = "2016-02-14", fraction: str = "1.0") -> list[str]:
    from my_mlops_project import model  # here, not above: conftest imports this module before Spark starts

    return [f"--training_table={model.SOURCE_TABLE}", f"--training_end_date={end}", f"--sample_fraction={fraction}"]


def unmeetable_thresholds(monkeypatch) -> None:
    """Make validation fail: the headline metric must beat a value no model reaches."""
    from my_mlops_project import model

    name = model.headline_metric()
    kept = model.THRESHOLDS[name]
    impossible = math.inf if kept.greater_is_better else -math.inf
    thresholds = {**model.THRESHOLDS, name: model.Threshold(impossible, kept.greater_is_better, kept.vs_champion)}
    monkeypatch.setattr(model, "THRESHOLDS", thresholds)
