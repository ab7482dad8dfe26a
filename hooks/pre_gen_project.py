"""Refuse bad answers before cookiecutter writes the project.

Every rule is a small function that returns an error message (or None). ``validate``
runs them all, so a user sees every problem in one go. ``refusal`` turns the errors into
the message a user sees: every problem, then a ready command line that re-runs the bake
with the same answers and each bad one marked ``<fix me: ...>``, so nothing has to be
typed again.

The same rules run twice during a bake. ``local_extensions.ValidationExtension`` runs
them in cookiecutter's own process while the answers are collected (the last variable of
cookiecutter.json, ``__answers_checked``), so a refused bake writes nothing and ends with
the message alone (cookiecutter's CLI prints a ``FailedHookException`` without a
traceback). ``main`` runs them again as the pre-generation hook, for bakes that skip
prompting (``--replay-file``, ``cruft update``); cookiecutter then removes the
half-made project directory.

The module imports cleanly without cookiecutter: the template tests call ``validate``
directly with hand-made contexts.
"""

from __future__ import annotations

import difflib
import json
import keyword
import re
import shlex
import sys
import uuid

# Cookiecutter renders this file with Jinja before running it. The JSON can hold any
# character except an unescaped double quote, so a raw triple-quoted string keeps it intact.
CONTEXT_JSON = r"""{{ cookiecutter | jsonify }}"""

CHOICES = {
    "deployment_pattern": ("deploy_code", "deploy_models", "hybrid"),
    "cicd_platform": ("github_actions", "azure_devops", "gitlab", "none"),
    "cloud": ("azure", "aws", "gcp"),
    "compute": ("serverless", "classic"),
}
BOOLEANS = ("include_monitoring", "include_serving_endpoint")
HOSTS = ("dev_workspace_host", "staging_workspace_host", "prod_workspace_host")
CATALOGS = ("dev_catalog", "test_catalog", "staging_catalog", "prod_catalog")
IDENTIFIERS = (*CATALOGS, "schema_name", "model_name")
SERVICE_PRINCIPALS = ("ci_service_principal", "staging_service_principal", "prod_service_principal")
BRANCHES = ("default_branch", "release_branch")

SLUG_RE = re.compile(r"[a-z_][a-z0-9_]*")
UC_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9_]+")
HOST_RE = re.compile(r"https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?/?")
UC_IDENTIFIER_MAX = 255
# A pragmatic address check: one @, no spaces or commas, a dot in the domain.
PATH_PART_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
EMAIL_RE = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
# What cookiecutter.json derives project_slug to when project_name has no letter or digit
# (e.g. an empty name). An empty slug would make cookiecutter fail on the project directory
# before any rule runs; this value is a usable directory name that check_project_slug
# refuses, naming project_name.
SLUG_FALLBACK = "no-slug-from-project-name"


def _fail(key: str, value: object, rule: str) -> str:
    return f"{key}={value!r}: {rule}"


def check_project_name(ctx: dict) -> str | None:
    value = ctx.get("project_name", "")
    if not str(value).strip():
        return _fail("project_name", value, "must not be empty; pass e.g. project_name='Fare Model'")
    if "\n" in str(value) or "\r" in str(value):
        return _fail("project_name", value, "must be a single line")
    return None


def check_description(ctx: dict) -> str | None:
    value = str(ctx.get("description", ""))
    if "\n" in value or "\r" in value:
        return _fail("description", value, "must be a single line")
    return None


def check_project_slug(ctx: dict) -> str | None:
    value = ctx.get("project_slug", "")
    hint = "pass project_slug=<name>, e.g. project_slug=fare_model"
    if value == SLUG_FALLBACK:
        if not str(ctx.get("project_name", "")).strip():
            return None  # check_project_name reports the empty name
        return _fail(
            "project_name",
            ctx.get("project_name", ""),
            "has no letters or digits to derive project_slug from; "
            "give a name such as project_name='Fare Model', or pass project_slug=fare_model",
        )
    if not SLUG_RE.fullmatch(str(value)):
        return _fail(
            "project_slug",
            value,
            "must be a lowercase Python identifier (letters a-z, digits, underscores; "
            f"not starting with a digit); {hint}",
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return _fail("project_slug", value, f"is a Python keyword and cannot name a package; {hint}")
    return None


def check_choices(ctx: dict) -> list[str]:
    errors = []
    for key, allowed in CHOICES.items():
        value = ctx.get(key)
        if value not in allowed:
            errors.append(_fail(key, value, f"must be one of {', '.join(allowed)}"))
    return errors


def check_booleans(ctx: dict) -> list[str]:
    return [_fail(key, ctx.get(key), "must be true or false") for key in BOOLEANS if not isinstance(ctx.get(key), bool)]


def check_hosts(ctx: dict) -> list[str]:
    errors = []
    for key in HOSTS:
        value = str(ctx.get(key, ""))
        if key == "dev_workspace_host" and value == "":
            continue  # the dev target then uses the user's CLI profile
        if not HOST_RE.fullmatch(value):
            errors.append(
                _fail(
                    key,
                    value,
                    "must be a workspace URL such as https://adb-123.4.azuredatabricks.net (https only, no path)",
                )
            )
    return errors


def check_identifiers(ctx: dict) -> list[str]:
    errors = []
    for key in IDENTIFIERS:
        value = str(ctx.get(key, ""))
        if not UC_IDENTIFIER_RE.fullmatch(value) or len(value) > UC_IDENTIFIER_MAX:
            errors.append(
                _fail(
                    key,
                    value,
                    "must be a Unity Catalog identifier: letters, digits and underscores, "
                    f"1 to {UC_IDENTIFIER_MAX} characters",
                )
            )
    return errors


def check_catalogs_distinct(ctx: dict) -> list[str]:
    errors = []
    envs = ("dev_catalog", "staging_catalog", "prod_catalog")
    values = [str(ctx.get(key, "")).lower() for key in envs]
    if len(set(values)) != len(values):
        pairs = ", ".join(f"{key}={ctx.get(key)!r}" for key in envs)
        errors.append(
            f"{pairs}: dev, staging and prod must each have their own catalog "
            "(Unity Catalog names are case-insensitive)"
        )
    if str(ctx.get("test_catalog", "")).lower() == str(ctx.get("prod_catalog", "")).lower():
        errors.append(
            _fail(
                "test_catalog",
                ctx.get("test_catalog"),
                "must differ from prod_catalog: CI integration runs must never write to prod",
            )
        )
    return errors


def check_service_principals(ctx: dict) -> list[str]:
    errors = []
    for key in SERVICE_PRINCIPALS:
        value = str(ctx.get(key, ""))
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            parsed = None
        if parsed is None or str(parsed) != value.lower():
            errors.append(
                _fail(
                    key,
                    value,
                    "must be the service principal's application ID, a UUID like 12345678-1234-1234-1234-123456789abc",
                )
            )
    values = {key: str(ctx.get(key, "")).lower() for key in SERVICE_PRINCIPALS}
    if not errors and len(set(values.values())) != len(values):
        pairs = ", ".join(f"{key}={ctx.get(key)!r}" for key in SERVICE_PRINCIPALS)
        errors.append(
            f"{pairs}: each trust level needs its own service principal, so that a pull request "
            "can never act as staging or prod"
        )
    return errors


def check_groups(ctx: dict) -> list[str]:
    errors = []
    examples = {"read_group": "ml-readers", "uc_read_group": "ml-model-readers"}
    for key, example in examples.items():
        value = str(ctx.get(key, ""))
        if not value.strip():
            errors.append(_fail(key, value, f"must name a group (for example {example})"))
        elif value != value.strip() or re.search(r"[\x00-\x1f\x7f]", value):
            errors.append(_fail(key, value, "must have no leading or trailing spaces and no control characters"))
    if str(ctx.get("uc_read_group", "")).strip().lower() == "users":
        errors.append(
            _fail(
                "uc_read_group",
                ctx.get("uc_read_group"),
                "'users' is a workspace-local group and Unity Catalog refuses grants to it; "
                "use a named account-level group such as 'ml-model-readers'",
            )
        )
    return errors


def check_notification_emails(ctx: dict) -> list[str]:
    value = str(ctx.get("notification_emails", ""))
    if not value.strip():
        return []  # no failure e-mails
    bad = [address.strip() for address in value.split(",") if not EMAIL_RE.fullmatch(address.strip())]
    if bad:
        return [
            _fail(
                "notification_emails",
                value,
                f"not an e-mail address: {', '.join(repr(b) for b in bad)}; "
                "give comma-separated addresses such as ml-team@example.com,oncall@example.com, or leave it empty",
            )
        ]
    return []


def branch_name_problem(name: str) -> str | None:
    """Return why git would refuse ``name`` as a branch name (git check-ref-format rules)."""
    if not name:
        return "is empty"
    if name.startswith("-"):
        return "starts with '-'"
    if name in ("@", "HEAD"):
        return f"is {name!r}"
    if re.search(r"[\x00-\x20\x7f~^:?*\[\\]", name):
        return "contains a space, control character or one of ~ ^ : ? * [ \\"
    if ".." in name or "@{" in name or "//" in name:
        return "contains '..', '@{' or '//'"
    if name.startswith("/") or name.endswith("/") or name.endswith("."):
        return "starts or ends with '/', or ends with '.'"
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return "has a path component that starts with '.' or ends with '.lock'"
    return None


def check_branches(ctx: dict) -> list[str]:
    errors = []
    for key in BRANCHES:
        value = str(ctx.get(key, ""))
        problem = branch_name_problem(value)
        if problem:
            errors.append(_fail(key, value, f"is not a valid git branch name: it {problem}"))
    if not errors and ctx.get("default_branch") == ctx.get("release_branch"):
        errors.append(
            _fail(
                "release_branch",
                ctx.get("release_branch"),
                "must differ from default_branch: the default branch deploys staging, the release branch deploys prod",
            )
        )
    return errors


def project_root_problem(value: str) -> str | None:
    """Why ``value`` is not a clean relative folder inside the repository (None if it is)."""
    if value == ".":
        return None  # the repository root
    if not value:
        return "is empty (use . for the repository root)"
    if "\\" in value:
        return "contains a backslash (separate folders with /)"
    if value.startswith("/") or re.match(r"[A-Za-z]:", value):
        return "is absolute (give a folder relative to the repository root, e.g. services/fare_model)"
    parts = value.split("/")
    if any(part == ".." for part in parts):
        return "contains '..' (the project must stay inside the repository)"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' path component (write a clean path such as services/fare_model)"
    bad = [part for part in parts if not PATH_PART_RE.fullmatch(part)]
    if bad:
        # The path goes unquoted into CI path filters, YAML and shell commands.
        return f"has a folder name other than letters, digits, '.', '_' and '-': {bad[0]!r}"
    return None


def check_project_root(ctx: dict) -> str | None:
    value = str(ctx.get("project_root", "."))
    problem = project_root_problem(value)
    if problem:
        return _fail(
            "project_root",
            value,
            f"must be . or a relative folder such as services/fare_model: it {problem}",
        )
    return None


RULES = (
    check_project_name,
    check_description,
    check_project_slug,
    check_choices,
    check_booleans,
    check_hosts,
    check_identifiers,
    check_catalogs_distinct,
    check_service_principals,
    check_groups,
    check_notification_emails,
    check_branches,
    check_project_root,
)


def validate(ctx: dict) -> list[str]:
    """Return every problem with the answers in ``ctx`` (empty when all is well)."""
    errors: list[str] = []
    for rule in RULES:
        result = rule(ctx)
        if isinstance(result, str):
            errors.append(result)
        elif result:
            errors.extend(result)
    # schema_name and model_name derive from the slug: when the slug could not be derived,
    # the one message about project_name says it all.
    return [e for e in errors if not (SLUG_FALLBACK in e and not e.startswith("project_name="))]


def check_config_defaults(defaults: dict, variables: dict) -> list[str]:
    """Problems cookiecutter lets through in a config file's ``default_context``.

    ``variables`` is cookiecutter.json. Cookiecutter ignores an unknown key, and turns a
    value outside a choice or a non-boolean for a yes/no option into a warning, then
    drops that key and every key after it; a team file with such a value would bake with
    the wrong answers. Every other value lands in the answers and goes through ``validate``.
    An unknown key is refused only when it looks like a misspelt option: a user config
    often holds answers for other templates too (``full_name``, ``email``).
    """
    options = [key for key in variables if not key.startswith("_")]
    errors = []
    for key, value in defaults.items():
        where = f"{key}={value!r} ({CONFIG_FILE_NOTE})"
        if key not in options:
            close = difflib.get_close_matches(key, options, n=1, cutoff=0.8)
            if close:
                errors.append(f"{where}: is not an option of this template; did you mean {close[0]}?")
        elif isinstance(variables[key], list) and value not in variables[key]:
            errors.append(f"{where}: must be one of {', '.join(map(str, variables[key]))}")
        elif isinstance(variables[key], bool) and not isinstance(value, bool):
            if str(value).strip().lower() not in BOOL_WORDS:
                errors.append(f"{where}: must be true or false")
    return errors


CONFIG_FILE_NOTE = "default_context of the cookiecutter config file"
BOOL_WORDS = ("1", "true", "t", "yes", "y", "on", "0", "false", "f", "no", "n", "off")
KEY_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


def bad_keys(errors: list[str]) -> dict[str, str]:
    """The keys each error names (``key=`` at its start, before the first ': '), with its rule."""
    keys: dict[str, str] = {}
    for error in errors:
        head, _, rule = error.partition(": ")
        for match in KEY_RE.finditer(head):
            if match.start() == 0 or head[match.start() - 2 : match.start()] == ", ":
                keys.setdefault(match.group(1), rule)
    return keys


def retry_answers(ctx: dict, errors: list[str]) -> dict[str, str]:
    """Every answer in ``ctx`` as the command line takes it, the bad ones marked ``<fix me: ...>``.

    Keys derived from a slug that could not be derived are left out, so that they are
    derived again from the fixed project_name.
    """
    marked = bad_keys(errors)
    answers = {}
    for key, value in ctx.items():
        if key.startswith("_") or isinstance(value, (dict, list)):
            continue
        if key in marked:
            rule = re.split(r"[;(,]", marked[key])[0].replace("'", "").replace('"', "")
            value = f"<fix me: {' '.join(rule.split()[:8])}>"
        elif SLUG_FALLBACK in str(value):
            continue
        elif isinstance(value, bool):
            value = "true" if value else "false"
        answers[key] = str(value)
    return answers


def retry_command(ctx: dict, errors: list[str], template: str, tool: str = "cookiecutter") -> str:
    """A shell command that bakes again with every answer in ``ctx``, the bad ones marked."""
    answers = retry_answers(ctx, errors)
    if tool == "cruft update":
        # The other answers are in .cruft.json: pass only the ones to fix.
        marked = {key: value for key, value in answers.items() if value.startswith("<fix me: ")}
        words = ["cruft update", f"--variables-to-update {shlex.quote(json.dumps(marked, ensure_ascii=False))}"]
    elif tool.startswith("cruft"):
        context = json.dumps(answers, ensure_ascii=False)
        words = [tool, shlex.quote(template), "--no-input", f"--extra-context {shlex.quote(context)}"]
    else:
        words = ["cookiecutter", shlex.quote(template), "--no-input"]
        words += [f"{key}={shlex.quote(value)}" for key, value in answers.items()]
    return " \\\n    ".join(words)


def refusal(ctx: dict, errors: list[str], template: str | None = None, tool: str = "cookiecutter") -> str:
    """The message that refuses a bake: the problems, and how to retry without retyping."""
    template = template or str(ctx.get("_template") or "<template>")
    lines = ["ERROR: the project was not generated. Fix these answers and try again:"]
    lines += [f"  - {error}" for error in errors]
    if any(CONFIG_FILE_NOTE in error for error in errors):
        # Cookiecutter stopped applying the file at the bad value: the answers are not the team's.
        lines += ["", "Fix the config file (--config-file or COOKIECUTTER_CONFIG) and run the same command again."]
        return "\n".join(lines)
    lines += [
        "",
        "Your answers, with the bad ones marked <fix me: ...>; fix those and run:",
        "",
        "  " + retry_command(ctx, errors, template, tool),
    ]
    return "\n".join(lines)


def main() -> int:
    ctx = json.loads(CONTEXT_JSON)
    errors = validate(ctx)
    if not errors:
        return 0
    print(refusal(ctx, errors), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
