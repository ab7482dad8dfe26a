"""Unit tests of the template's rules (template_rules.py) and hooks, without baking."""

from __future__ import annotations

import sys

import pytest
from bake import TEMPLATE_DIR
from helpers import DEFAULTS, default_answers, load_hook

sys.path.insert(0, str(TEMPLATE_DIR))
import template_rules as pre  # noqa: E402

post = load_hook("post_gen_project")


def test_valid_answers_pass():
    assert pre.validate(default_answers()) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("project_name", "   ", "must not be empty"),
        ("project_name", "two\nlines", "single line"),
        ("description", "two\nlines", "single line"),
        ("project_slug", "Fare-Model", "lowercase Python identifier"),
        ("project_slug", "1fare", "lowercase Python identifier"),
        ("project_slug", "class", "Python keyword"),
        ("project_slug", "match", "Python keyword"),
        ("deployment_pattern", "canary", "must be one of deploy_code, deploy_models, hybrid"),
        ("cicd_platform", "jenkins", "must be one of"),
        ("cloud", "oci", "must be one of"),
        ("compute", "gpu", "must be one of"),
        ("include_monitoring", "yes", "must be true or false"),
        ("staging_workspace_host", "http://adb-1.1.azuredatabricks.net", "https only"),
        ("prod_workspace_host", "adb-2.azuredatabricks.net", "https only"),
        ("prod_workspace_host", "https://host/with/path", "no path"),
        ("dev_workspace_host", "ftp://x", "workspace URL"),
        ("dev_catalog", "dev-catalog", "Unity Catalog identifier"),
        ("schema_name", "my schema", "Unity Catalog identifier"),
        ("model_name", "model.v1", "Unity Catalog identifier"),
        ("model_name", "", "Unity Catalog identifier"),
        ("prod_catalog", "x" * 256, "1 to 255 characters"),
        ("staging_service_principal", "my-sp", "UUID"),
        ("prod_service_principal", "00000000-0000-0000-0000-00000000000Z", "UUID"),
        ("read_group", " ", "must name a group"),
        ("ci_service_principal", "ci", "UUID"),
        ("uc_read_group", "", "must name a group"),
        ("uc_read_group", "users", "workspace-local group"),
        ("uc_read_group", "account users ", "no leading or trailing spaces"),
        ("notification_emails", "team@example.com, not-an-address", "'not-an-address'"),
        ("notification_emails", "a@b", "not an e-mail address"),
        ("default_branch", "feature..x", "'..'"),
        ("default_branch", "has space", "space"),
        ("release_branch", "-release", "starts with '-'"),
        ("release_branch", "release.lock", ".lock"),
        ("release_branch", "release/", "ends with '/'"),
        ("default_branch", "a:b", "space, control character"),
        ("release_branch", "@", "'@'"),
        ("release_branch", "HEAD", "'HEAD'"),
    ],
)
def test_each_rule_names_key_value_and_rule(key, value, message):
    answers = default_answers()
    answers[key] = value
    errors = pre.validate(answers)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{key}={value!r}") and message in errors[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"staging_catalog": "dev"}, "each need their own catalog"),
        ({"prod_catalog": "DEV"}, "case-insensitive"),
        ({"test_catalog": "prod"}, "must differ from prod_catalog"),
        ({"release_branch": "main"}, "must differ from default_branch"),
    ],
)
def test_cross_field_rules(changes, message):
    answers = {**default_answers(), **changes}
    errors = pre.validate(answers)
    assert any(message in error for error in errors), errors


def test_all_problems_are_reported_at_once():
    answers = {**default_answers(), "project_slug": "Bad", "read_group": "", "prod_service_principal": "x"}
    keys = sorted(error.split("=", 1)[0] for error in pre.validate(answers))
    assert keys == ["prod_service_principal", "project_slug", "read_group"]


def test_a_dev_host_may_be_empty_and_hosts_may_end_with_a_slash():
    answers = {
        **default_answers(),
        "dev_workspace_host": "",
        "staging_workspace_host": "https://x.cloud.databricks.com/",
    }
    assert pre.validate(answers) == []


@pytest.mark.parametrize("name", ["main", "release", "release/2026.11", "feature/x-y_z", "v1.2"])
def test_branch_names_git_accepts(name):
    assert pre.branch_name_problem(name) is None


def test_defaults_of_cookiecutter_json_are_valid():
    answers = {**default_answers(), **{k: v for k, v in DEFAULTS.items() if isinstance(v, str) and "{{" not in v}}
    for key, value in DEFAULTS.items():
        if isinstance(value, list):
            answers[key] = value[0]
        if isinstance(value, bool):
            answers[key] = value
    assert pre.validate(answers) == []


def test_the_rules_are_one_module_without_jinja_and_the_hook_is_a_shim():
    source = (TEMPLATE_DIR / "template_rules.py").read_text()
    assert "{{" not in source and "{%" not in source
    hook = load_hook("pre_gen_project")
    assert hook.template_root() == TEMPLATE_DIR
    # No rule of its own: the names an older local_extensions.py calls delegate to template_rules.
    assert [name for name in vars(hook) if name.startswith("check_")] == ["check_config_defaults"]
    bad = {**default_answers(), "read_group": ""}
    assert hook.validate(bad) == pre.validate(bad) != []


@pytest.mark.parametrize("path", ["local_extensions.py", "template_rules.py", "hooks/pre_gen_project.py"])
def test_no_check_reads_call_frames(path):
    """Answers and the command line come from what cookiecutter passes and sys.argv, never from
    the private locals of cookiecutter's or cruft's frames."""
    source = (TEMPLATE_DIR / path).read_text()
    for needle in ("inspect", "f_locals", "f_back", "currentframe", "_getframe"):
        assert needle not in source, (path, needle)


def test_a_cross_field_problem_names_only_the_key_to_fix():
    """staging_catalog=dev: staging_catalog is refused; dev_catalog is named as the other side."""
    found = pre.problems({**default_answers(), "staging_catalog": "dev"})
    assert [(p.key, p.also) for p in found] == [("staging_catalog", ("dev_catalog",))]
    assert str(found[0]).startswith("staging_catalog='dev': must differ from dev_catalog ('dev')")


def test_names_derived_from_a_refused_slug_are_not_refused_with_it():
    answers = {**default_answers(), "project_slug": "Bad-Slug", "schema_name": "Bad-Slug"}
    answers["model_name"] = "Bad-Slug_model"
    assert [p.key for p in pre.problems(answers)] == ["project_slug"]
    # Given explicitly (not the derived value), a bad schema name is still refused.
    answers["schema_name"] = "my schema"
    assert [p.key for p in pre.problems(answers)] == ["project_slug", "schema_name"]


def test_problems_at_a_prompt_only_see_the_answers_so_far():
    answers = {"project_name": "Fares", "project_slug": "fares", "dev_catalog": "dev", "test_catalog": "test"}
    assert pre.problems_at("test_catalog", answers) == []
    answers["staging_catalog"] = "DEV"
    assert [p.key for p in pre.problems_at("staging_catalog", answers)] == ["staging_catalog"]
    assert [p.key for p in pre.problems_at("project_name", {"project_name": "!!!"})] == ["project_name"]


# --- post-generation table -------------------------------------------------------------


def test_every_row_names_an_existing_option_and_existing_paths():
    from bake import TEMPLATE_DIR

    project = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    for option, keep, paths in post.CONDITIONAL_PATHS:
        assert option in DEFAULTS, option
        assert keep, option
        for path in paths:
            assert (project / path.format(package="{{cookiecutter.project_slug}}")).exists(), path


def test_paths_to_remove_follows_the_options():
    answers = default_answers()
    removed = post.paths_to_remove(answers)
    assert "resources/model_promotion_job.yml" in removed
    assert ".github" not in removed and ".gitlab-ci.yml" in removed and ".azure" in removed
    assert "resources/model_serving.yml" in removed
    assert "resources/monitoring.yml" not in removed

    answers.update(deployment_pattern="hybrid", cicd_platform="none", include_monitoring=False)
    answers.update(include_serving_endpoint=True)
    removed = post.paths_to_remove(answers)
    assert "resources/model_promotion_job.yml" not in removed
    assert {".github", ".azure", ".gitlab-ci.yml", "docs/ci-setup.md", "resources/monitoring.yml"} <= set(removed)
    assert "resources/model_serving.yml" not in removed


def test_remove_paths_deletes_files_and_folders(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("x")
    (tmp_path / "g.yml").write_text("x")
    post.remove_paths(tmp_path, ["a", "g.yml", "missing.txt"])
    assert list(tmp_path.iterdir()) == []


def test_replay_context_drops_machine_paths():
    ctx = {**default_answers(), "_output_dir": "/tmp/x", "_repo_dir": "/tmp/t", "_template": "t", "_checkout": None}
    replay = post.replay_context(ctx)
    assert set(replay) == {"cookiecutter"}
    assert "_output_dir" not in replay["cookiecutter"] and replay["cookiecutter"]["project_slug"] == "fare_model"


def test_group_names_may_contain_spaces_and_emails_may_be_a_list():
    answers = {
        **default_answers(),
        "uc_read_group": "account users",
        "read_group": "data scientists",
        "notification_emails": "ml-team@example.com, oncall@example.org",
    }
    assert pre.validate(answers) == []


def test_each_trust_level_needs_its_own_service_principal():
    answers = {**default_answers(), "ci_service_principal": default_answers()["staging_service_principal"].upper()}
    errors = pre.validate(answers)
    assert len(errors) == 1 and "each trust level needs its own service principal" in errors[0], errors


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty"),
        ("/srv/fare", "is absolute"),
        ("C:/fare", "is absolute"),
        ("../fare", "'..'"),
        ("services/../fare", "'..'"),
        ("services\\fare", "backslash"),
        ("services//fare", "empty or '.' path component"),
        ("services/fare/", "empty or '.' path component"),
        ("./fare", "empty or '.' path component"),
        ("services/my fare", "folder name other than"),
        ("services/*", "folder name other than"),
        (".github/fare", "folder name other than"),
        ("fare:x", "folder name other than"),
    ],
)
def test_project_root_must_be_a_clean_relative_folder(value, message):
    errors = pre.validate({**default_answers(), "project_root": value})
    assert len(errors) == 1 and errors[0].startswith(f"project_root={value!r}:"), errors
    assert message in errors[0], errors[0]


@pytest.mark.parametrize("value", [".", "fare_model", "services/fare_model", "ml/fare-model.v2/app"])
def test_project_root_accepts_clean_relative_folders(value):
    assert pre.validate({**default_answers(), "project_root": value}) == []


# --- relocation into a repository (project_root) ---------------------------------------


def test_root_ci_files_go_to_the_repository_root_named_after_the_project():
    assert post.repository_path(".github/workflows/ci.yml", "fare") == (".github/workflows/fare-ci.yml", True)
    assert post.repository_path(".azure/pipelines/templates/setup-uv.yml", "fare") == (
        ".azure/pipelines/fare/templates/setup-uv.yml",
        True,
    )
    assert post.repository_path(".gitlab-ci.yml", "fare") == (".gitlab/ci/fare.yml", True)
    assert post.repository_path(".gitlab/repository-ci.yml", "fare") == (".gitlab-ci.yml", True)
    assert post.repository_path("databricks.yml", "fare") == ("databricks.yml", False)
    assert post.repository_path(".gitignore", "fare") == (".gitignore", False)


def _baked(tmp_path, slug="fare"):
    baked = tmp_path / "repo" / slug
    (baked / ".github" / "workflows").mkdir(parents=True)
    (baked / ".github" / "workflows" / "ci.yml").write_text("ci\n")
    (baked / "src").mkdir()
    (baked / "src" / "a.py").write_text("a\n")
    (baked / "databricks.yml").write_text("bundle\n")
    return baked


def test_relocate_moves_the_project_and_its_ci_files(tmp_path):
    baked = _baked(tmp_path)
    repo = baked.parent
    post.relocate(baked, repo, "services/fare", "fare")
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    assert files == [".github/workflows/fare-ci.yml", "services/fare/databricks.yml", "services/fare/src/a.py"]
    assert not baked.exists()


def test_relocate_in_place_when_the_folder_is_named_after_the_slug(tmp_path):
    baked = _baked(tmp_path)
    post.relocate(baked, baked.parent, "fare", "fare")
    assert (baked / "databricks.yml").is_file() and not (baked / ".github").exists()
    assert (baked.parent / ".github" / "workflows" / "fare-ci.yml").read_text() == "ci\n"


def test_relocate_into_a_folder_below_the_baked_one(tmp_path):
    baked = _baked(tmp_path)
    post.relocate(baked, baked.parent, "fare/model", "fare")
    assert (baked / "model" / "src" / "a.py").read_text() == "a\n"
    assert not (baked / "src").exists() and not (baked / "databricks.yml").exists()


def test_relocate_refuses_any_collision_and_changes_nothing(tmp_path):
    baked = _baked(tmp_path)
    repo = baked.parent
    (repo / "services" / "fare").mkdir(parents=True)
    (repo / "services" / "fare" / "databricks.yml").write_text("another bundle\n")
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "fare-ci.yml").write_text("ci\n")  # the same content: fine
    (repo / "services" / "fare" / "src").write_text("a file where a folder must go\n")
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    with pytest.raises(post.RelocationRefused) as refused:
        post.relocate(baked, repo, "services/fare", "fare")
    problems = refused.value.args[0]
    assert any("services/fare/databricks.yml exists with other content" in p for p in problems), problems
    assert any("services/fare/src is a file" in p for p in problems), problems
    assert not any("fare-ci.yml" in p for p in problems), problems
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before


def test_identical_files_are_left_as_they_are(tmp_path):
    baked = _baked(tmp_path)
    repo = baked.parent
    (repo / "services" / "fare").mkdir(parents=True)
    (repo / "services" / "fare" / "databricks.yml").write_text("bundle\n")
    written = post.relocate(baked, repo, "services/fare", "fare")
    assert repo / "services" / "fare" / "databricks.yml" not in written
    assert (repo / "services" / "fare" / "src" / "a.py").is_file()
