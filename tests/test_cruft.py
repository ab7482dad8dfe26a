"""Template updates reach generated projects through cruft, and merge with local work.

The promise in the README ("Updating a generated project"), tested end to end with the
real ``cruft`` and ``git`` commands and no network: a git repository of this template at
commit A, and at commit B which

- changes a generated file (README.md gains a section),
- adds an option (``team_tag``, default ``ml``) with a validation rule in
  template_rules.py, used in README.md,
- renames a resource file (resources/batch_inference_job.yml -> resources/batch_inference.yml).

A project is created from A with ``cruft create``, committed, edited locally (README.md,
the resource file B renames, a new module), committed, and updated to B with
``cruft update``. The test checks what was merged, what was kept, that the new option
took its default and goes through B's validation, and that the project's own fast checks
still pass.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from bake import TEMPLATE_DIR, project_env
from helpers import BIN

SLUG = "fares"
ANSWERS = {"project_name": "Fares", "deployment_pattern": "deploy_models", "cicd_platform": "gitlab"}
OLD_RESOURCE = "resources/batch_inference_job.yml"
NEW_RESOURCE = "resources/batch_inference.yml"
IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache", "*.pyc")

# The rule B adds to template_rules.py, in the style of the others.
B_RULE = """

def check_team_tag(ctx: dict) -> str | None:
    value = str(ctx.get("team_tag", ""))
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", value):
        return _fail("team_tag", value, "must be a short lowercase tag such as ml or fraud-ml")
    return None


RULES = (*RULES, check_team_tag)
"""


def git_env(home: Path) -> dict[str, str]:
    """No user or system git config, a fixed identity: the same on every machine."""
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="Template Test",
        GIT_AUTHOR_EMAIL="template-test@example.com",
        GIT_COMMITTER_NAME="Template Test",
        GIT_COMMITTER_EMAIL="template-test@example.com",
    )
    env["COLUMNS"] = "300"  # cruft prints errors through rich, which wraps at the terminal width
    env.pop("COOKIECUTTER_CONFIG", None)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def commit_all(repo: Path, message: str, env: dict[str, str]) -> str:
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", message], repo, env)
    return run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()


def make_template_b(template: Path) -> None:
    project = template / "{{cookiecutter.project_slug}}"
    # A new option with a default, before the private variables (cookiecutter asks in file order).
    variables = json.loads((template / "cookiecutter.json").read_text())
    reordered = {}
    for key, value in variables.items():
        if key.startswith("_") and "team_tag" not in reordered:
            reordered["team_tag"] = "ml"
        reordered[key] = value
    reordered["__prompts__"]["team_tag"] = "Team tag (lowercase)"
    (template / "cookiecutter.json").write_text(json.dumps(reordered, indent=2) + "\n")
    # Its validation rule, in the template's rules module.
    rules = template / "template_rules.py"
    rules.write_text(rules.read_text() + B_RULE)
    # A changed generated file that uses it.
    readme = project / "README.md"
    readme.write_text(
        readme.read_text() + "\n## Support\n\nAsk the platform team. Team tag: {{ cookiecutter.team_tag }}\n"
    )
    # A renamed resource file (databricks.yml includes resources/*.yml).
    (project / NEW_RESOURCE).parent.mkdir(exist_ok=True)
    (project / OLD_RESOURCE).rename(project / NEW_RESOURCE)


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory):
    """(repository, env, commit A, commit B)."""
    root = tmp_path_factory.mktemp("cruft")
    env = git_env(root)
    repo = root / "template"
    shutil.copytree(TEMPLATE_DIR, repo, ignore=IGNORED)
    assert (repo / "{{cookiecutter.project_slug}}" / OLD_RESOURCE).is_file()
    run(["git", "-c", "init.defaultBranch=main", "init", "-q"], repo, env)
    commit_a = commit_all(repo, "A", env)
    make_template_b(repo)
    commit_b = commit_all(repo, "B: team_tag option, README section, renamed resource", env)
    return repo, env, commit_a, commit_b


def cruft(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "cruft"), *args], cwd, env, check=check)


def test_cruft_update_merges_template_changes_with_local_work(template_repo, tmp_path):
    repo, env, commit_a, commit_b = template_repo
    project = project_at_a(template_repo, tmp_path)
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == commit_a and state["context"]["cookiecutter"]["deployment_pattern"] == "deploy_models"
    assert "team_tag" not in state["context"]["cookiecutter"]
    assert not (project / ".cookiecutter-replay.json").exists()  # .cruft.json holds the answers

    # Local work, committed (cruft update refuses an unclean tree).
    readme = project / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    readme.write_text(lines[0] + "\nOwned by the fares team.\n" + "".join(lines[1:]))
    (project / OLD_RESOURCE).write_text((project / OLD_RESOURCE).read_text() + "# reviewed by the fares team\n")
    own_module = project / "src" / SLUG / "extra_features.py"
    own_module.write_text('"""Features only this project has."""\n')
    commit_all(project, "local work", env)

    assert cruft(["check"], project, env, check=False).returncode != 0  # the template moved on

    # The new option goes through B's validation: a bad value is refused and changes nothing.
    refused = cruft(["update", "-y", "--variables-to-update", '{"team_tag": "Fraud ML"}'], project, env, check=False)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "team_tag='Fraud ML': must be a short lowercase tag" in output and "Traceback" not in output
    # The retry is an update again, from a file (outside the project) with only the value to fix.
    answers_file = Path(tempfile.gettempdir()) / "mlops-answers.json"
    assert f"cruft update -y --variables-to-update-file {answers_file}" in output, output
    fixes = json.loads(answers_file.read_text())
    assert fixes == {
        "context": {"cookiecutter": {"team_tag": "<fix me: must be a short lowercase tag such as ml or fraud-ml>"}}
    }
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_a
    # A misspelt option is refused too, naming the closest one of the new commit.
    misspelt = cruft(["update", "-y", "--variables-to-update", '{"team_tagg": "ml"}'], project, env, check=False)
    assert misspelt.returncode != 0
    assert "team_tagg='ml' (--variables-to-update): is not an option of this template; did you mean team_tag?" in (
        misspelt.stdout + misspelt.stderr
    )
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""

    cruft(["update", "-y"], project, env)

    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == commit_b
    assert state["context"]["cookiecutter"]["team_tag"] == "ml"  # the new option took its default
    assert state["context"]["cookiecutter"]["project_name"] == "Fares"  # the old answers stayed
    text = readme.read_text()
    assert "Owned by the fares team." in text  # kept
    assert "## Support" in text and "Team tag: ml" in text  # merged
    assert not (project / OLD_RESOURCE).exists()  # renamed ...
    assert (project / NEW_RESOURCE).read_text().endswith("# reviewed by the fares team\n")  # ... with the local edit
    assert own_module.is_file()
    leftovers = [p for p in project.rglob("*") if p.suffix in (".rej", ".orig")]
    assert leftovers == []
    conflicted = [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts and "<<<<<<<" in p.read_text()]
    assert conflicted == []
    assert cruft(["check"], project, env).returncode == 0

    # The project's own fast checks: the bundle resolves in every target and its fast tests pass.
    passes_its_fast_checks(project, env, tmp_path, ("tests/test_bundle.py", "tests/test_names.py"))


def passes_its_fast_checks(project: Path, env: dict[str, str], tmp_path: Path, tests: tuple[str, ...]) -> None:
    """``python -m mlops_local validate`` and ``tests`` (those the project has) pass in ``project``."""
    checks_env = {**project_env(project, state=tmp_path / "state"), **{k: env[k] for k in ("HOME",)}}
    run([sys.executable, "-m", "mlops_local", "validate"], project, checks_env)
    fast = [name for name in tests if (project / name).is_file()]
    assert fast, "no fast test file of the generated project found"
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *fast], project, checks_env, False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+ passed", result.stdout)


def readme_block(project: Path, starts_with: str) -> str:
    """The fenced bash block of the generated README.md that starts with ``starts_with``."""
    blocks = re.findall(r"```bash\n(.*?)```", (project / "README.md").read_text(), flags=re.S)
    matching = [block for block in blocks if block.startswith(starts_with)]
    assert len(matching) == 1, blocks
    return matching[0]


def test_a_project_baked_with_cookiecutter_links_as_its_readme_says_then_updates(template_repo, tmp_path):
    repo, env, commit_a, commit_b = template_repo
    at_a = tmp_path / "template-at-a"
    run(["git", "clone", "-q", str(repo), str(at_a)], tmp_path, env)
    run(["git", "checkout", "-q", commit_a], at_a, env)
    out = tmp_path / "projects"
    out.mkdir()
    args = [f"{key}={value}" for key, value in ANSWERS.items()]
    run([str(BIN / "cookiecutter"), "--no-input", str(at_a), "-o", str(out), *args], tmp_path, env)
    project = out / SLUG
    assert (project / ".cookiecutter-replay.json").is_file() and not (project / ".cruft.json").exists()
    run(["git", "-c", "init.defaultBranch=main", "init", "-q"], project, env)
    commit_all(project, "baked with cookiecutter", env)

    link = readme_block(project, "cruft link ")
    link = link.replace("<template git URL>", str(repo)).replace("<commit>", commit_a)
    run(["bash", "-ec", link], project, env)
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == commit_a
    assert state["context"]["cookiecutter"]["deployment_pattern"] == "deploy_models"
    assert not (project / ".cookiecutter-replay.json").exists()
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""
    assert cruft(["diff", "--exit-code"], project, env, check=False).returncode == 0  # linked at the right commit

    cruft(["update", "-y"], project, env)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_b
    assert "Team tag: ml" in (project / "README.md").read_text()
    assert (project / NEW_RESOURCE).is_file() and not (project / OLD_RESOURCE).exists()


def project_at_a(template_repo, tmp_path: Path) -> Path:
    """A project created from commit A with ``cruft create``, committed in its own git repository."""
    repo, env, commit_a, _ = template_repo
    out = tmp_path / "projects"
    out.mkdir()
    cruft(
        ["create", str(repo), "--checkout", commit_a, "--no-input", "--output-dir", str(out)]
        + ["--extra-context", json.dumps(ANSWERS)],
        tmp_path,
        env,
    )
    project = out / SLUG
    run(["git", "-c", "init.defaultBranch=main", "init", "-q"], project, env)
    commit_all(project, "baked from the template", env)
    return project


def test_cruft_update_asks_in_a_terminal_and_each_answer_works(template_repo, tmp_path):
    """The README's ``cruft update`` without -y, in a pseudo-terminal: n leaves the project as it
    is; v shows the diff and asks again; Enter (the default, y) applies the update."""
    pexpect = pytest.importorskip("pexpect")
    repo, env, commit_a, commit_b = template_repo
    project = project_at_a(template_repo, tmp_path)

    def update(*answers: str) -> str:
        child = pexpect.spawn(str(BIN / "cruft"), ["update"], cwd=str(project), env=env, encoding="utf-8", timeout=120)
        child.logfile_read = io.StringIO()
        for answer in answers:
            child.expect(r"Apply diff and update\?")
            child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        output = child.logfile_read.getvalue()
        assert child.exitstatus == 0, output
        assert "Traceback" not in output and "AssertionError" not in output, output
        return output

    update("n")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_a
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""

    shown = update("v", "")
    assert "Team tag: ml" in shown  # v showed the diff before the second question
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_b
    assert "Team tag: ml" in (project / "README.md").read_text()


def test_the_documented_cruft_commands_pin_the_tested_versions():
    """The README's install commands carry the cruft and typer versions the test above runs with."""
    pins = dict(re.findall(r'"(cruft|typer)==([^"]+)"', (TEMPLATE_DIR / "pyproject.toml").read_text()))
    readmes = [TEMPLATE_DIR / "README.md", TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "README.md"]
    for readme in readmes:
        text = readme.read_text()
        uvx = re.findall(r"uvx (?:--with typer==(\S+) )?cruft(?:@(\S+))?", text)
        pip = re.findall(r"pip install cruft(?:==(\S+))?(?: typer==([^\s`]+))?", text)
        assert uvx and pip, readme
        assert set(uvx) == {(pins["typer"], pins["cruft"])}, (readme, uvx)
        assert set(pip) == {(pins["cruft"], pins["typer"])}, (readme, pip)


# main before the job package was restructured (model.py, the local runner moved to src/mlops_local).
BEFORE_RESTRUCTURE = "cedac425909e70aea89f14283f585c463c29abb1"


def test_cruft_update_from_before_the_restructure_moves_the_local_runner(tmp_path):
    """A project made before ``local/`` moved out of the job package updates to this template cleanly.

    Commit A is this repository at ``BEFORE_RESTRUCTURE`` (from its own git history), commit B
    the working tree. The update must move the local runner and the workspace stand-in, bring
    ``model.py``, keep the team's own work, and leave a project whose checks pass.
    """
    archive = subprocess.run(["git", "archive", BEFORE_RESTRUCTURE], cwd=TEMPLATE_DIR, capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE_RESTRUCTURE[:7]} is not in this clone's history (a shallow clone?)")
    env = git_env(tmp_path)
    repo = tmp_path / "template"
    repo.mkdir()
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True)
    run(["git", "-c", "init.defaultBranch=main", "init", "-q"], repo, env)
    commit_a = commit_all(repo, "A: before the restructure", env)
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(TEMPLATE_DIR, repo, ignore=IGNORED, dirs_exist_ok=True)
    commit_b = commit_all(repo, "B: this template", env)

    project = project_at_a((repo, env, commit_a, commit_b), tmp_path)
    assert (project / "src" / SLUG / "local" / "runner.py").is_file()
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nOwned by the fares team.\n")
    own_module = project / "src" / SLUG / "extra_features.py"
    own_module.write_text('"""Features only this project has."""\n')
    commit_all(project, "local work", env)

    cruft(["update", "-y"], project, env)

    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_b
    assert not (project / "src" / SLUG / "local").exists()
    assert not (project / "tests" / "workspace_stand_in.py").exists()
    for moved in ("runner.py", "bundle.py", "rules.py", "scenario.py", "workspace.py", "environment.py"):
        assert (project / "src" / "mlops_local" / moved).is_file(), moved
    assert (project / "src" / SLUG / "model.py").is_file()
    assert "Owned by the fares team." in readme.read_text() and own_module.is_file()
    leftovers = [p for p in project.rglob("*") if p.suffix in (".rej", ".orig")]
    assert leftovers == []
    conflicted = [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts and "<<<<<<<" in p.read_text()]
    assert conflicted == []

    passes_its_fast_checks(project, env, tmp_path, ("tests/test_bundle.py", "tests/test_names.py"))
