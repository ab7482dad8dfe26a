"""A new team's first hour: what a bake and `make demo` print, and a quick loop that trains."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bake import TEMPLATE_DIR, project_env
from helpers import BIN

sys.path.insert(0, str(TEMPLATE_DIR / "tools"))
import quiet  # noqa: E402


def test_a_bake_ends_with_the_next_steps(tmp_path):
    result = subprocess.run(
        [str(BIN / "cookiecutter"), str(TEMPLATE_DIR), "--no-input", "-o", str(tmp_path), "project_slug=fares"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"cd {tmp_path / 'fares'}" in out
    for command in ("uv sync", 'uv run pytest -m "not slow"', "uv run python -m mlops_local scenario"):
        assert command in out, out


def test_quiet_install_keeps_the_output_in_a_log_and_shows_progress(tmp_path, capsys):
    chatty = "\n".join(
        [*(f"Collecting pkg{i}\n  Downloading pkg{i}-1.0-py3-none-any.whl" for i in range(45))]
        + ["Installing collected packages: " + ", ".join(f"pkg{i}" for i in range(45))]
        + ["Successfully installed " + " ".join(f"pkg{i}-1.0" for i in range(45))]
    )
    log = tmp_path / "install.log"
    code = quiet.main(["--log", str(log), "--", sys.executable, "-c", f"print({chatty!r})"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(log.read_text().splitlines()) == 92
    assert len(out) <= 10, out
    assert "  40 packages collected" in out and "  installed 45 packages" in out


def test_quiet_install_shows_the_end_of_the_log_when_the_command_fails(tmp_path, capsys):
    log = tmp_path / "install.log"
    code = quiet.main(["--log", str(log), "--", sys.executable, "-c", "print('ERROR: no such package'); exit(3)"])
    err = capsys.readouterr().err
    assert code == 3
    assert "ERROR: no such package" in err and str(log) in err


def test_make_ui_opens_the_demo_registry(tmp_path):
    """`make ui` runs this venv's mlflow (not on PATH) on the registry `make demo` left, or says to run the demo."""
    make = ["make", "-n", "ui", "PATTERN=hybrid", f"BUILD={tmp_path}", f"VENV={BIN.parent}"]
    missing = subprocess.run(make, cwd=TEMPLATE_DIR, capture_output=True, text=True)
    assert "run make demo PATTERN=hybrid first" in missing.stdout
    db = tmp_path / "demo-hybrid" / "my_mlops_project" / ".mlops_local" / "mlflow.db"
    db.parent.mkdir(parents=True)
    db.touch()
    result = subprocess.run(make, cwd=TEMPLATE_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{BIN}/mlflow ui --backend-store-uri sqlite:///{db}" in result.stdout


@pytest.mark.slow
def test_the_quick_loop_catches_a_change_that_breaks_training(baked, tmp_path):
    """A hyperparameter the estimator refuses: `pytest -m "not slow"` must fail, in its training smoke test."""
    project = shutil.copytree(baked(), tmp_path / "project")
    problem = next(project.glob("src/*/model.py"))
    source = problem.read_text()
    assert '"max_iter": 200' in source
    problem.write_text(source.replace('"max_iter": 200', '"max_iter": 0'))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"],
        cwd=project,
        env=project_env(Path(project)),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0, result.stdout[-3000:]
    # The training smoke test is among the failures (tests that fit the estimator fail too).
    assert "FAILED tests/test_model_lifecycle.py::test_train_validate_deploy_on_a_small_sample" in result.stdout, (
        result.stdout[-3000:]
    )
