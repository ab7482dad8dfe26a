"""Baking with bad answers writes nothing and says how to retry; legal but hostile answers bake and parse."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from bake import TEMPLATE_DIR, bake
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context, generate_files
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from helpers import BIN, load_hook

pre = load_hook("pre_gen_project")


@pytest.mark.parametrize(
    "answers",
    [
        {"project_slug": "My-Project"},
        {"project_slug": "class"},
        {"project_name": "", "project_slug": "x"},
        {"staging_workspace_host": "http://adb-1.1.azuredatabricks.net"},
        {"prod_workspace_host": "prod.cloud.databricks.com"},
        {"dev_catalog": "dev-catalog"},
        {"schema_name": "my schema"},
        {"staging_catalog": "prod"},
        {"prod_service_principal": "not-a-uuid"},
        {"read_group": ""},
        {"release_branch": "release..1"},
        {"release_branch": "main"},
    ],
    ids=lambda answers: ",".join(f"{k}={v}" for k, v in answers.items()),
)
def test_bad_answers_are_refused_and_nothing_is_left(tmp_path, answers):
    with pytest.raises(FailedHookException) as refused:
        cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    message = str(refused.value)
    key = next(iter(answers))
    assert "the project was not generated" in message and re.search(rf"  - (.*, )?{key}=", message)
    assert f"{key}='<fix me: " in message  # the retry command marks it


def test_an_unknown_choice_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="deployment_pattern"):
        cookiecutter(
            str(TEMPLATE_DIR), no_input=True, extra_context={"deployment_pattern": "canary"}, output_dir=str(tmp_path)
        )
    assert list(tmp_path.iterdir()) == []


HOSTILE = {
    "project_name": 'It\'s "Fare" #1: {braces} & more',
    "project_slug": "fare_model",
    "description": 'Predicts fares: "yellow" cabs\' #tips {x} \\ back-slash',
    "read_group": "data scientists",
    "staging_workspace_host": "https://adb-1234.5.azuredatabricks.net/",
}


@pytest.mark.parametrize("pattern", ["deploy_code", "deploy_models", "hybrid"])
def test_hostile_but_legal_answers_bake_and_round_trip(tmp_path, pattern):
    project = bake(tmp_path, deployment_pattern=pattern, cicd_platform="gitlab", **HOSTILE)
    for path in project.rglob("*"):
        if path.suffix in (".yml", ".yaml"):
            yaml.safe_load(path.read_text())
        elif path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == HOSTILE["description"]
    artifacts = yaml.safe_load((project / "resources" / "ml_artifacts.yml").read_text())
    assert artifacts["resources"]["registered_models"]["model"]["comment"] == HOSTILE["description"]
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    assert bundle["variables"]["read_group"]["default"] == "data scientists"
    assert bundle["targets"]["staging"]["workspace"]["host"] == "https://adb-1234.5.azuredatabricks.net"
    assert HOSTILE["project_name"] in (project / "README.md").read_text()


def test_the_replay_file_rebakes_the_same_project(tmp_path):
    first = bake(tmp_path / "first", deployment_pattern="hybrid", cicd_platform="gitlab", **HOSTILE)
    replay = first / ".cookiecutter-replay.json"
    assert replay.is_file()
    again = Path(cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(tmp_path / "again")))
    first_files = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}
    again_files = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first_files == again_files


# --- Refusals on the command line: the message, no traceback, a retry command that works ---


def run_cli(args: list[str], home: Path, stdin: str | None = None, cwd: Path | None = None):
    """Run this environment's cookiecutter with its own HOME (replay and clone folders)."""
    env = {**os.environ, "HOME": str(home), "COLUMNS": "200"}
    env.pop("COOKIECUTTER_CONFIG", None)
    return subprocess.run(
        [str(BIN / "cookiecutter"), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def run_shell(command: str, cwd: Path, home: Path):
    """Run a printed command line as a user would paste it, this environment's tools first on PATH."""
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def retry_command_of(output: str) -> str:
    """The command line a refusal prints (the indented lines after "fix those and run:")."""
    after = output.split("fix those and run:", 1)[1]
    lines = [line for line in after.splitlines() if line.strip()]
    return "\n".join(lines)


def fix(command: str, key: str, value: str) -> str:
    marked = re.compile(re.escape(key) + r"='<fix me: [^']*>'")
    assert marked.search(command), command
    return marked.sub(f"{key}={value}", command)


def test_cli_refusal_prints_a_retry_command_that_bakes_once_fixed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bad = ['project_name=It\'s "Fare" $HOME', "prod_service_principal=not-a-uuid", "release_branch=main"]
    result = run_cli([str(TEMPLATE_DIR), "--no-input", "-o", str(out), *bad], home=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "the project was not generated" in output
    assert "prod_service_principal='not-a-uuid': must be the service principal's application ID" in output
    assert list(out.iterdir()) == []
    command = retry_command_of(output)
    command = fix(
        fix(command, "prod_service_principal", "12345678-1234-1234-1234-123456789abc"), "release_branch", "rel"
    )
    again = run_shell(command, cwd=out, home=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    answers = json.loads((out / "it_s_fare_home" / ".cookiecutter-replay.json").read_text())["cookiecutter"]
    assert answers["project_name"] == 'It\'s "Fare" $HOME'  # shell-quoted: nothing expanded or lost
    assert answers["prod_service_principal"] == "12345678-1234-1234-1234-123456789abc"
    assert answers["release_branch"] == "rel"


def test_interactive_refusal_keeps_every_typed_answer(tmp_path):
    """Answers typed at the prompts (fed on stdin) come back in the retry command."""
    variables = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    questions = [key for key in variables if not key.startswith("_")]
    typed = {"project_name": "Taxi Fares", "cloud": "2", "dev_catalog": "dev_ml", "uc_read_group": "users"}
    stdin = "".join(typed.get(key, "") + "\n" for key in questions)
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli([str(TEMPLATE_DIR), "-o", str(out)], home=tmp_path, stdin=stdin)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "uc_read_group='users': 'users' is a workspace-local group" in output
    assert list(out.iterdir()) == []
    command = retry_command_of(output)
    for expected in ("project_name='Taxi Fares'", "project_slug=taxi_fares", "cloud=aws", "dev_catalog=dev_ml"):
        assert expected in command
    command = fix(command, "uc_read_group", "'account users'")
    again = run_shell(command, cwd=out, home=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    answers = json.loads((out / "taxi_fares" / ".cookiecutter-replay.json").read_text())["cookiecutter"]
    assert (answers["cloud"], answers["dev_catalog"], answers["uc_read_group"]) == ("aws", "dev_ml", "account users")


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "project_name='': must not be empty"), ("!!!", "project_name='!!!': has no letters or digits")],
)
def test_a_name_without_a_slug_gets_the_templates_message(tmp_path, name, message):
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli([str(TEMPLATE_DIR), "--no-input", "-o", str(out), f"project_name={name}"], home=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and message in output, output
    assert "already exists" not in output and "Traceback" not in output
    assert list(out.iterdir()) == []
    # The retry command leaves the derived names out, so they follow the fixed name.
    command = retry_command_of(output)
    assert "project_slug=" not in command and "schema_name=" not in command and "model_name=" not in command


def test_the_slug_fallback_is_refused_by_the_hook_too(tmp_path, capfd):
    """A tool that skips the in-process check (cruft update, old replay files) meets the hook:
    the empty slug does not reach the directory name, and the hook names project_name."""
    context = generate_context(str(TEMPLATE_DIR / "cookiecutter.json"), extra_context={"project_name": "!!!"})
    del context["cookiecutter"]["__answers_checked"]
    context["cookiecutter"] = prompt_for_config(context, no_input=True)
    assert context["cookiecutter"]["project_slug"] == pre.SLUG_FALLBACK
    with pytest.raises(FailedHookException):
        generate_files(str(TEMPLATE_DIR), context=context, output_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    err = capfd.readouterr().err
    assert "project_name='!!!': has no letters or digits" in err and "fix those and run:" in err


def test_a_bad_replay_file_is_refused_by_the_hook_with_a_retry_command(tmp_path, capfd):
    project = bake(tmp_path / "first")
    replay = project / ".cookiecutter-replay.json"
    answers = json.loads(replay.read_text())
    answers["cookiecutter"]["read_group"] = ""
    replay.write_text(json.dumps(answers))
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(tmp_path / "again"))
    assert not (tmp_path / "again").exists() or list((tmp_path / "again").iterdir()) == []
    err = capfd.readouterr().err
    assert "read_group='': must name a group" in err and "read_group='<fix me: must name a group>'" in err


def test_retry_answers_mark_every_key_an_error_names():
    ctx = {"project_name": "X", "dev_catalog": "a", "staging_catalog": "a", "prod_catalog": "p", "flag": True}
    errors = pre.check_catalogs_distinct(ctx) + [pre._fail("flag", True, "whatever (x)")]
    answers = pre.retry_answers(ctx, errors)
    assert answers["project_name"] == "X"
    assert all(answers[key].startswith("<fix me: ") for key in ("dev_catalog", "staging_catalog", "prod_catalog"))
    assert answers["flag"] == "<fix me: whatever>"


@pytest.mark.parametrize("read_group", ["data scientists", ""])
def test_a_replay_file_from_before_the_in_process_check_is_checked_by_the_hook(tmp_path, capfd, read_group):
    """Replay files of projects baked by 0.1.0 lack ``__answers_checked``: cookiecutter renders it
    alone, without the template's extensions; it must not fail, and the hook checks the answers."""
    project = bake(tmp_path / "first")
    replay = project / ".cookiecutter-replay.json"
    answers = json.loads(replay.read_text())
    del answers["cookiecutter"]["__answers_checked"]
    answers["cookiecutter"]["read_group"] = read_group
    replay.write_text(json.dumps(answers))
    if read_group:
        again = Path(cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(tmp_path / "again")))
        assert json.loads((again / ".cookiecutter-replay.json").read_text())["cookiecutter"]["read_group"] == read_group
    else:
        with pytest.raises(FailedHookException):
            cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(tmp_path / "again"))
        assert "read_group='': must name a group" in capfd.readouterr().err
        assert list((tmp_path / "again").iterdir()) == []


@pytest.mark.parametrize("tool", ["cookiecutter", "cruft create", "cruft update"])
def test_retry_commands_parse_back_to_the_answers(tool):
    ctx = {"project_name": 'It\'s "x" $HOME', "include_monitoring": False, "read_group": "", "_template": "t"}
    errors = [pre._fail("read_group", "", "must name a group (for example users)")]
    words = shlex.split(pre.retry_command(ctx, errors, "git@example.com:t.git", tool).replace("\\\n", " "))
    if tool == "cookiecutter":
        assert words[:3] == ["cookiecutter", "git@example.com:t.git", "--no-input"]
        given = dict(word.split("=", 1) for word in words[3:])
    elif tool == "cruft create":
        assert words[:5] == ["cruft", "create", "git@example.com:t.git", "--no-input", "--extra-context"]
        given = json.loads(words[5])
    else:
        assert words[:3] == ["cruft", "update", "--variables-to-update"]
        assert json.loads(words[3]) == {"read_group": "<fix me: must name a group>"}
        return
    assert given == {
        "project_name": ctx["project_name"],
        "include_monitoring": "false",
        "read_group": "<fix me: must name a group>",
    }
