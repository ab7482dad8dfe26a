"""A model that is not scikit-learn fits through model.py: an MLflow PythonModel over numpy.

A bake with every optional job (monitoring, serving endpoint) gets, in its model.py only, a
ridge regressor written with numpy.linalg as an ``mlflow.pyfunc.PythonModel``, logged with
``mlflow.pyfunc.log_model`` and scored on numpy metrics; the problem (table, features, label,
thresholds) stays the example's. The generated suite, the local scenario and the local
scoring server then have to pass, and no generated file but model.py may import scikit-learn
(MLflow's evaluator, which validation uses, brings it as MLflow's own dependency).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from problem_swap import SCENARIO_TESTS, copy_project, model_py, replace_definitions, run_suite

NUMPY_MODEL = '''
import sys

import cloudpickle
import numpy as np

MODEL_PARAMS = {"alpha": 1.0}


class RidgeRegressor(mlflow.pyfunc.PythonModel):
    """Least squares with an L2 penalty on standardised features, solved with numpy.linalg."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y):
        self.columns = list(X.columns)
        x = X.to_numpy(dtype="float64")
        self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-12
        z = (x - self.mean) / self.scale
        target = np.asarray(y, dtype="float64")
        self.intercept = float(target.mean())
        self.coef = np.linalg.solve(z.T @ z + self.alpha * np.eye(z.shape[1]), z.T @ (target - self.intercept))
        return self

    def predict(self, model_input, params=None):
        x = model_input[self.columns].to_numpy(dtype="float64")
        return (x - self.mean) / self.scale @ self.coef + self.intercept


def build_model():
    return RidgeRegressor(**MODEL_PARAMS)


def log_model(fitted, **options):
    # The class travels with the model (by value), so loading it needs numpy, not this package.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return mlflow.pyfunc.log_model(python_model=fitted, **options)


SCORING_IMPORTS = ("mlflow.pyfunc", "numpy", "pandas")
MODEL_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas")


def metrics(fitted, X, y_true) -> dict[str, float]:
    y = np.asarray(y_true, dtype="float64")
    error = np.asarray(fitted.predict(X), dtype="float64") - y
    return {
        "root_mean_squared_error": float(np.sqrt(np.mean(error**2))),
        "mean_absolute_error": float(np.mean(np.abs(error))),
        "r2_score": float(1 - np.sum(error**2) / np.sum((y - y.mean()) ** 2)),
    }
'''
SKLEARN = re.compile(r"^\s*(?:from|import)\s+sklearn\b", re.MULTILINE)


@pytest.fixture(scope="module")
def numpy_project(baked, tmp_path_factory) -> Path:
    project = copy_project(baked(include_monitoring=True, include_serving_endpoint=True), tmp_path_factory.mktemp("n"))
    replace_definitions(model_py(project), NUMPY_MODEL, drop_imports=("sklearn",))
    return project


def test_only_model_py_imports_scikit_learn(baked):
    project = baked(include_monitoring=True, include_serving_endpoint=True)
    importing = [
        path.relative_to(project).as_posix()
        for path in sorted(project.rglob("*.py"))
        if path.name != "model.py" and SKLEARN.search(path.read_text())
    ]
    assert importing == []


def test_the_swapped_model_py_has_no_scikit_learn(numpy_project):
    text = model_py(numpy_project).read_text()
    assert not SKLEARN.search(text) and "class RidgeRegressor(mlflow.pyfunc.PythonModel)" in text


@pytest.mark.slow
def test_the_generated_suite_passes_for_a_numpy_model(numpy_project, tmp_path):
    ran = run_suite(numpy_project, tmp_path / "report.xml")
    assert set(SCENARIO_TESTS) <= ran, sorted(ran)
    served = ("tests.test_serving", "test_the_champion_is_served_locally_and_the_server_stops_when_a_step_fails")
    assert served in ran
