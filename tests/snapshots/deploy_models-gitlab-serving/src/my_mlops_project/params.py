"""Command-line parameters shared by the entry points.

Jobs pass ``named_parameters`` as ``--name=value``; every value arrives as a string.
Each entry point builds its parser from these pieces, and the bundle tests parse every
task's parameters with the parser of the entry point it calls.
"""

from __future__ import annotations

import argparse

from .names import ModelRef


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description)


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", required=True, help="Unity Catalog catalog of the environment")
    p.add_argument("--schema", required=True, help="schema holding the model and its tables")
    p.add_argument("--model_name", required=True, help="registered model name (as the bundle resolved it)")


def add_training_data(p: argparse.ArgumentParser) -> None:
    from .model import SOURCE_TABLE  # here, so that entry points without training data don't load the model's libraries

    p.add_argument("--training_table", default=SOURCE_TABLE)
    p.add_argument("--training_end_date", required=True, help="last day used (yyyy-mm-dd)")
    p.add_argument("--sample_fraction", type=float, default=1.0)


def add_experiment(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment_name", required=True, help="MLflow experiment to log to")


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def model_ref(args: argparse.Namespace) -> ModelRef:
    return ModelRef(args.catalog, args.schema, args.model_name)


def entry_point(build_parser):
    """Attach ``build_parser`` to an entry point, so tools can check a task's parameters."""

    def attach(func):
        func.build_parser = build_parser
        return func

    return attach
