"""Command-line arguments the tests pass to entry points, as the bundle would."""

from __future__ import annotations


def model_args(model_ref) -> list[str]:
    return [f"--catalog={model_ref.catalog}", f"--schema={model_ref.schema}", f"--model_name={model_ref.name}"]


def data_args(end: str = "2016-02-14", fraction: str = "1.0") -> list[str]:
    return ["--training_table=samples.nyctaxi.trips", f"--training_end_date={end}", f"--sample_fraction={fraction}"]
