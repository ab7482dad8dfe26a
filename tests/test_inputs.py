"""Baking with bad answers writes nothing and says how to retry; legal but hostile answers bake and parse."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from bake import TEMPLATE_DIR, bake
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context, generate_files
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from helpers import BIN, default_answers
from test_cruft import IGNORED, commit_all, git_env

sys.path.insert(0, str(TEMPLATE_DIR))
import template_rules as pre  # noqa: E402


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
    # A clash between two answers is refused at the later question, naming the earlier one.
    assert "the project was not generated" in message and re.search(rf"  - .*\b{key}\b", message)


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
            list(yaml.safe_load_all(path.read_text()))
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


# --- Refusals on the command line: the message, no traceback, an answers file and a short command ---


def run_cli(args: list[str], home: Path, stdin: str | None = None, cwd: Path | None = None, tool: str = "cookiecutter"):
    """Run this environment's cookiecutter (or cruft) with its own HOME (replay and clone folders)."""
    env = {**git_env(home), "COLUMNS": "80"}  # the width of a small terminal: nothing to paste may wrap
    return subprocess.run(
        [str(BIN / tool), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def run_shell(command: str, cwd: Path, home: Path):
    """Run a printed command line as a user would paste it, this environment's tools first on PATH."""
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, env=git_env(home), timeout=120
    )


def retry_command_of(output: str, template: Path = TEMPLATE_DIR) -> str:
    """The command a refusal prints: the one indented line after "Fix those there and run:"."""
    after = output.split("Fix those there and run:", 1)[1]
    lines = [line for line in after.splitlines() if line.strip()]
    # One line: the user's own arguments and the file's name, no answer (nothing that can wrap inside a value).
    assert lines[0].startswith("    ") and not lines[0].endswith("\\") and "{" not in lines[0], lines
    assert len(lines[0].replace(str(template), "")) <= 100, lines
    return lines[0].strip()


def fix_answers(path: Path, **fixes: str) -> dict:
    """Edit the answers file as a user would: replace each marked value; return the file's answers."""
    content = json.loads(path.read_text())
    answers = content["default_context"] if "default_context" in content else content
    for key, value in fixes.items():
        assert str(answers[key]).startswith("<fix me: "), (key, answers[key])
        answers[key] = value
    assert not [key for key, value in answers.items() if str(value).startswith("<fix me")], answers
    path.write_text(json.dumps(content, indent=2))
    return answers


def test_cli_refusal_writes_the_answers_and_prints_a_short_command_that_bakes_once_fixed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bad = ['project_name=It\'s "Fare" $HOME', "description=two  spaces, and a long line " + "x" * 80]
    bad += ["prod_service_principal=not-a-uuid", "release_branch=main"]
    result = run_cli([str(TEMPLATE_DIR), "--no-input", "-o", "out", *bad], home=tmp_path, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "the project was not generated" in output
    assert "prod_service_principal='not-a-uuid': must be the service principal's application ID" in output
    assert list(out.iterdir()) == []
    command = retry_command_of(output)
    assert command.startswith("cookiecutter --config-file mlops-answers.json --no-input "), command
    fix_answers(
        tmp_path / "mlops-answers.json",
        prod_service_principal="12345678-1234-1234-1234-123456789abc",
        release_branch="rel",
    )
    again = run_shell(command, cwd=tmp_path, home=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    answers = json.loads((out / "it_s_fare_home" / ".cookiecutter-replay.json").read_text())["cookiecutter"]
    assert answers["project_name"] == 'It\'s "Fare" $HOME'  # nothing expanded or lost
    assert answers["description"] == bad[1].split("=", 1)[1]  # both spaces kept
    assert answers["prod_service_principal"] == "12345678-1234-1234-1234-123456789abc"
    assert answers["release_branch"] == "rel"


@pytest.fixture(scope="module")
def template_git(tmp_path_factory):
    """This template as a git repository (cruft clones its template)."""
    root = tmp_path_factory.mktemp("template-git")
    repo = root / "template"
    shutil.copytree(TEMPLATE_DIR, repo, ignore=IGNORED)
    env = git_env(root)
    subprocess.run(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=repo, env=env, check=True)
    commit_all(repo, "template", env)
    return repo


def test_cruft_create_refusal_writes_the_answers_and_prints_a_short_command(tmp_path, template_git):
    out = tmp_path / "out"
    out.mkdir()
    context = {"project_slug": "Bad-Slug", "staging_catalog": "dev", "description": "two  spaces " + "y" * 90}
    args = ["create", str(template_git), "--no-input", "--output-dir", "out", "--extra-context", json.dumps(context)]
    result = run_cli(args, home=tmp_path, cwd=tmp_path, tool="cruft")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "╭" not in output, output  # cruft's rich traceback
    assert "project_slug='Bad-Slug': must be a lowercase Python identifier" in output
    assert list(out.iterdir()) == []
    command = retry_command_of(output, template_git)
    assert command.endswith("--extra-context-file mlops-answers.json"), command
    answers = fix_answers(tmp_path / "mlops-answers.json", project_slug="fares", staging_catalog="staging")
    # 17.5: the valid catalogs are kept as given, the derived names are left to be derived again.
    assert (answers["dev_catalog"], answers["prod_catalog"]) == ("dev", "prod")
    assert "schema_name" not in answers and "model_name" not in answers
    again = run_shell(command, cwd=tmp_path, home=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    baked = json.loads((out / "fares" / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert (baked["schema_name"], baked["model_name"]) == ("fares", "fares_model")
    assert baked["description"] == context["description"]


@pytest.mark.parametrize("tool", ["cookiecutter", "cruft"])
def test_an_unknown_key_on_the_command_line_is_refused_naming_the_closest_option(tmp_path, template_git, tool):
    out = tmp_path / "out"
    out.mkdir()
    if tool == "cookiecutter":
        args = [str(TEMPLATE_DIR), "--no-input", "-o", str(out), "deploy_pattern=deploy_models"]
        where = "command line"
    else:
        given = json.dumps({"deploy_pattern": "deploy_models"})
        args = ["create", str(template_git), "--no-input", "--output-dir", str(out), "--extra-context", given]
        where = "--extra-context"
    result = run_cli(args, home=tmp_path, cwd=tmp_path, tool=tool)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    expected = (
        f"deploy_pattern='deploy_models' ({where}): is not an option of this template; did you mean deployment_pattern?"
    )
    assert expected in output and "Traceback" not in output, output
    assert list(out.iterdir()) == []


def test_interactive_refusal_keeps_every_typed_answer(tmp_path):
    """Answers typed on a pipe (not a terminal: nothing can be asked again) come back in the answers file."""
    variables = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    questions = [key for key in variables if not key.startswith("_")]
    typed = {"project_name": "Taxi Fares", "cloud": "2", "dev_catalog": "dev_ml", "uc_read_group": "users"}
    stdin = "".join(typed.get(key, "") + "\n" for key in questions)
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli([str(TEMPLATE_DIR), "-o", "out"], home=tmp_path, stdin=stdin, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "uc_read_group='users': 'users' is a workspace-local group" in output
    assert list(out.iterdir()) == []
    command = retry_command_of(output)
    answers = fix_answers(tmp_path / "mlops-answers.json", uc_read_group="account users")
    assert (answers["project_name"], answers["project_slug"]) == ("Taxi Fares", "taxi_fares")
    assert (answers["cloud"], answers["dev_catalog"]) == ("aws", "dev_ml")
    again = run_shell(command, cwd=tmp_path, home=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    answers = json.loads((out / "taxi_fares" / ".cookiecutter-replay.json").read_text())["cookiecutter"]
    assert (answers["cloud"], answers["dev_catalog"], answers["uc_read_group"]) == ("aws", "dev_ml", "account users")


def answer_in_a_terminal(
    args: list[str], home: Path, cwd: Path, answers: dict[str, list[str]], tool: str = "cookiecutter"
) -> tuple[int, str]:
    """Run cookiecutter (or cruft) in a pseudo-terminal; answer each prompt whose text contains a key
    of ``answers`` with the next of its values, every other prompt with Enter."""
    pexpect = pytest.importorskip("pexpect")
    env = {**git_env(home), "TERM": "dumb"}
    child = pexpect.spawn(str(BIN / tool), args, cwd=str(cwd), env=env, encoding="utf-8", timeout=60)
    child.logfile_read = io.StringIO()
    for _ in range(80):
        if child.expect([r": $", pexpect.EOF]) == 1:
            break
        question = " ".join(child.before.splitlines()[-2:])
        child.sendline(next((values.pop(0) for text, values in answers.items() if text in question and values), ""))
    child.close()
    return child.exitstatus, child.logfile_read.getvalue()


@pytest.mark.parametrize("tool", ["cookiecutter", "cruft"])
def test_a_bad_answer_is_asked_again_at_its_prompt_in_a_terminal(tmp_path, template_git, tool):
    """A typo in the slug is refused at its prompt and asked again; the schema and model names then
    derive from the fixed slug. A catalog equal to an earlier one is asked again at its prompt too."""
    out = tmp_path / "out"
    out.mkdir()
    answers = {
        "Project name": ["Taxi Fares"],
        "Project slug": ["Taxi-Fares", "taxi_fares"],
        "catalog for staging": ["dev", "staging_ml"],
    }
    if tool == "cookiecutter":
        args = [str(TEMPLATE_DIR), "-o", str(out)]
    else:
        args = ["create", str(template_git), "--output-dir", str(out)]
    status, transcript = answer_in_a_terminal(args, tmp_path, tmp_path, answers, tool=tool)
    assert status == 0, transcript
    assert "! project_slug='Taxi-Fares': must be a lowercase Python identifier" in transcript
    assert "! staging_catalog='dev': must differ from dev_catalog ('dev')" in transcript
    # Asked again right away: the refusal comes before the next question.
    assert transcript.index("! project_slug=") < transcript.index("One-line description")
    assert "the project was not generated" not in transcript and "Traceback" not in transcript
    if tool == "cookiecutter":
        baked = json.loads((out / "taxi_fares" / ".cookiecutter-replay.json").read_text())["cookiecutter"]
    else:
        baked = json.loads((out / "taxi_fares" / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert (baked["project_slug"], baked["schema_name"], baked["model_name"]) == (
        "taxi_fares",
        "taxi_fares",
        "taxi_fares_model",
    )
    assert baked["staging_catalog"] == "staging_ml"


def test_no_input_in_a_terminal_asks_nothing_and_refuses_with_the_answers_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = [str(TEMPLATE_DIR), "--no-input", "-o", str(out), "project_slug=Taxi-Fares"]
    status, transcript = answer_in_a_terminal(args, tmp_path, tmp_path, {})
    assert status == 1 and "! project_slug" not in transcript, transcript
    assert "project_slug='Taxi-Fares': must be a lowercase Python identifier" in transcript
    assert "Fix those there and run:" in transcript and list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "project_name='': must not be empty"), ("!!!", "project_name='!!!': has no letters or digits")],
)
def test_a_name_without_a_slug_gets_the_templates_message(tmp_path, name, message):
    out = tmp_path / "out"
    out.mkdir()
    args = [str(TEMPLATE_DIR), "--no-input", "-o", str(out), f"project_name={name}"]
    result = run_cli(args, home=tmp_path, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and message in output, output
    assert "already exists" not in output and "Traceback" not in output
    assert list(out.iterdir()) == []
    # The answers file leaves the derived names out, so they follow the fixed name.
    answers = json.loads((tmp_path / "mlops-answers.json").read_text())["default_context"]
    assert not {"project_slug", "schema_name", "model_name"} & set(answers), answers


def checks_left_out(context: dict) -> dict:
    """The context without the in-process checks, as a tool that skips them would pass it."""
    return {key: value for key, value in context.items() if not (key.startswith("__") and key.endswith("_checked"))}


def test_the_slug_fallback_is_refused_by_the_hook_too(tmp_path, capfd):
    """A tool that skips the in-process check (old replay files) meets the hook: the empty slug
    does not reach the directory name, and the hook names project_name."""
    context = generate_context(str(TEMPLATE_DIR / "cookiecutter.json"), extra_context={"project_name": "!!!"})
    context["cookiecutter"] = checks_left_out(context["cookiecutter"])
    context["cookiecutter"] = prompt_for_config(context, no_input=True)
    assert context["cookiecutter"]["project_slug"] == pre.SLUG_FALLBACK
    with pytest.raises(FailedHookException):
        generate_files(str(TEMPLATE_DIR), context=context, output_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    err = capfd.readouterr().err
    assert "project_name='!!!': has no letters or digits" in err and "Fix them where the answers came from" in err


def test_a_bad_replay_file_is_refused_by_the_hook(tmp_path, capfd):
    project = bake(tmp_path / "first")
    replay = project / ".cookiecutter-replay.json"
    answers = json.loads(replay.read_text())
    answers["cookiecutter"]["read_group"] = ""
    replay.write_text(json.dumps(answers))
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(tmp_path / "again"))
    assert not (tmp_path / "again").exists() or list((tmp_path / "again").iterdir()) == []
    err = capfd.readouterr().err
    assert "read_group='': must name a group" in err and "--replay-file" in err


def test_retry_answers_mark_only_the_keys_to_fix_and_leave_derived_names_out():
    """17.5: ``project_slug=Bad-Slug staging_catalog=dev`` marks those two; prod_catalog stays as
    given, and schema_name and model_name (derived from the bad slug) are left to be derived again."""
    given = {"project_slug": "Bad-Slug", "staging_catalog": "dev"}
    ctx = {**default_answers(), **given, "schema_name": "Bad-Slug", "model_name": "Bad-Slug_model", "_template": "t"}
    found = pre.problems(ctx)
    assert sorted(p.key for p in found) == ["project_slug", "staging_catalog"]
    answers = pre.retry_answers(ctx, found)
    expected = {k: v for k, v in default_answers().items() if k not in ("schema_name", "model_name", "__monorepo")}
    expected["project_slug"] = (
        "<fix me: must be a lowercase Python identifier: letters a-z, digits and underscores, "
        "not starting with a digit>"
    )
    expected["staging_catalog"] = (
        "<fix me: must differ from dev_catalog ('dev'): dev, staging and prod each need their own catalog "
        "(Unity Catalog names are case-insensitive)>"
    )
    assert answers == expected
    assert (answers["dev_catalog"], answers["prod_catalog"]) == ("dev", "prod")


@pytest.mark.parametrize("read_group", ["data scientists", ""])
def test_a_replay_file_from_before_the_in_process_check_is_checked_by_the_hook(tmp_path, capfd, read_group):
    """Replay files of projects baked by 0.1.0 lack the ``__..._checked`` variables: cookiecutter
    renders them alone, without the template's extensions; they must not fail, and the hook checks."""
    project = bake(tmp_path / "first")
    replay = project / ".cookiecutter-replay.json"
    answers = json.loads(replay.read_text())
    answers["cookiecutter"] = checks_left_out(answers["cookiecutter"])
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


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["/venv/bin/cookiecutter", "--no-input", "gh:org/t", "-o", "out", "--config-file", "team.yaml", "a=1"],
            "cookiecutter --config-file mlops-answers.json --no-input -o out gh:org/t",
        ),
        (
            ["cruft", "create", "git@example.com:t.git", "-c", "v1", "--extra-context", '{"a": "1"}'],
            "cruft create git@example.com:t.git -c v1 --extra-context-file mlops-answers.json --no-input",
        ),
        (
            ["cruft", "link", "https://x/t.git", "--no-input", "--extra-context={}"],
            'cruft link https://x/t.git --no-input --extra-context "$(cat mlops-answers.json)"',
        ),
        (
            ["cruft", "update", "-y", "--variables-to-update", '{"read_group": ""}'],
            "cruft update -y --variables-to-update-file mlops-answers.json",
        ),
    ],
    ids=["cookiecutter", "cruft create", "cruft link", "cruft update"],
)
def test_retry_commands_keep_the_users_options_and_read_the_answers_file(argv, expected):
    line = pre.parse_command_line(argv)
    ctx = {"project_name": 'It\'s "x" $HOME', "include_monitoring": False, "read_group": "", "_template": "t"}
    found = [pre.Problem("read_group", "", "must name a group (for example users)")]
    content, command = pre.retry(line, ctx, found)
    assert command == expected
    if line.tool == "cruft update":
        assert content == {
            "context": {"cookiecutter": {"read_group": "<fix me: must name a group (for example users)>"}}
        }
    else:
        answers = content.get("default_context", content)
        assert answers == {**{k: v for k, v in ctx.items() if k != "_template"}, "read_group": found[0].marker}


def test_the_command_line_is_read_from_argv_only_for_the_two_clis():
    assert pre.parse_command_line(["/usr/bin/python", "-m", "pytest", "a=b"]).tool == ""
    line = pre.parse_command_line(["cookiecutter", "t", "--no-input", "x=1", "--checkout", "a=b", "y=2"])
    assert (line.tool, line.template, line.no_input, line.answers) == ("cookiecutter", "t", True, {"x": "1", "y": "2"})
    line = pre.parse_command_line(["cruft", "create", "t", "-E", "/nonexistent.json"])
    assert line.answers == {}  # cruft itself reports the missing file
