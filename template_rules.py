"""The template's rules for its answers: one module, no Jinja, no cookiecutter import.

Every rule is a small function of the answers that returns its problems: a ``Problem``
reads ``key='value': rule`` and names the one key to fix (``key``) and, for a rule between
two answers, the other one (``also``). ``problems`` runs every rule, so a user sees every
problem at once; ``validate`` is the same as plain strings.

Three callers use this module, each through the normal import system:

- ``local_extensions.py`` (the Jinja extension cookiecutter.json names in ``_extensions``)
  checks each answer at its prompt, asks again in a terminal, refuses unknown keys on the
  command line, and refuses the whole set of answers before anything is written;
- ``hooks/pre_gen_project.py``, a thin shim, runs ``problems`` again on the final context
  (replay files, and any tool that bakes without the extension's checks);
- ``tools/check_team_defaults.py`` checks a team's cookiecutter config file
  (``check_config_defaults``), for a platform team's own CI.

``parse_command_line`` reads the command line of the cookiecutter and cruft CLIs (the
process's ``sys.argv``, as the user typed it), and ``retry`` turns the answers into a file
and a short command that reads it.
"""

from __future__ import annotations

import difflib
import json
import keyword
import os
import re
import shlex
import uuid
from dataclasses import dataclass, field

CHOICES = {
    "deployment_pattern": ("deploy_code", "deploy_models", "hybrid"),
    "cicd_platform": ("github_actions", "azure_devops", "gitlab", "none"),
    "cloud": ("azure", "aws", "gcp"),
    "compute": ("serverless", "classic"),
}
BOOLEANS = ("include_monitoring", "include_serving_endpoint", "include_feature_store")
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
NO_SLUG_RULE = (
    "has no letters or digits to derive project_slug from; "
    "give a name such as project_name='Fare Model', or pass project_slug=fare_model"
)


class Problem(str):
    """A refused answer, as text ``key='value': rule``, with the key to fix and any other key the rule compares."""

    key: str
    value: object
    rule: str
    also: tuple[str, ...]
    where: str

    def __new__(cls, key: str, value: object, rule: str, also: tuple[str, ...] = (), where: str = "") -> Problem:
        text = f"{key}={value!r} ({where}): {rule}" if where else f"{key}={value!r}: {rule}"
        problem = super().__new__(cls, text)
        problem.key, problem.value, problem.rule, problem.also, problem.where = key, value, rule, also, where
        return problem

    @property
    def marker(self) -> str:
        """What the retry file holds instead of the refused value."""
        return f"<fix me: {self.rule.split('; ')[0]}>"


def _fail(key: str, value: object, rule: str, also: tuple[str, ...] = ()) -> Problem:
    return Problem(key, value, rule, also)


def has_letter_or_digit(text: str) -> bool:
    return re.search(r"[^\W_]", text) is not None


def check_project_name(ctx: dict) -> str | None:
    value = ctx.get("project_name", "")
    if not str(value).strip():
        return _fail("project_name", value, "must not be empty; pass e.g. project_name='Fare Model'")
    if "\n" in str(value) or "\r" in str(value):
        return _fail("project_name", value, "must be a single line")
    if "project_slug" not in ctx and not has_letter_or_digit(str(value)):
        # At the project_name prompt, before the slug is derived from it.
        return _fail("project_name", value, NO_SLUG_RULE)
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
        return _fail("project_name", ctx.get("project_name", ""), NO_SLUG_RULE, also=("project_slug",))
    if not SLUG_RE.fullmatch(str(value)):
        return _fail(
            "project_slug",
            value,
            "must be a lowercase Python identifier: letters a-z, digits and underscores, "
            f"not starting with a digit; {hint}",
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
    """dev, staging and prod each need their own catalog: the later of two equal ones is refused."""
    errors = []
    seen: dict[str, str] = {}
    for key in ("dev_catalog", "staging_catalog", "prod_catalog"):
        if key not in ctx:
            continue
        value = str(ctx[key]).lower()
        if value in seen:
            errors.append(
                _fail(
                    key,
                    ctx[key],
                    f"must differ from {seen[value]} ({ctx[seen[value]]!r}): dev, staging and prod each need "
                    "their own catalog (Unity Catalog names are case-insensitive)",
                    also=(seen[value],),
                )
            )
        else:
            seen[value] = key
    if (
        "test_catalog" in ctx
        and "prod_catalog" in ctx
        and str(ctx["test_catalog"]).lower() == str(ctx["prod_catalog"]).lower()
    ):
        errors.append(
            _fail(
                "test_catalog",
                ctx.get("test_catalog"),
                "must differ from prod_catalog: CI integration runs must never write to prod",
                also=("prod_catalog",),
            )
        )
    return errors


def check_service_principals(ctx: dict) -> list[str]:
    errors = []
    for key in SERVICE_PRINCIPALS:
        if key not in ctx:
            continue
        value = str(ctx[key])
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
    if errors:
        return errors
    seen: dict[str, str] = {}
    for key in SERVICE_PRINCIPALS:
        value = str(ctx[key]).lower() if key in ctx else None
        if value in seen:
            errors.append(
                _fail(
                    key,
                    ctx[key],
                    f"is also {seen[value]}: each trust level needs its own service principal, "
                    "so that a pull request can never act as staging or prod",
                    also=(seen[value],),
                )
            )
        elif value is not None:
            seen[value] = key
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
                also=("default_branch",),
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


def problems(ctx: dict) -> list[Problem]:
    """Every problem with the answers in ``ctx`` (empty when all is well).

    A name derived from a refused slug (``schema_name``, ``model_name`` left at their
    defaults) is not refused with it: it is derived again once the slug is fixed.
    """
    found: list[Problem] = []
    for rule in RULES:
        result = rule(ctx)
        if isinstance(result, str):
            found.append(result)
        elif result:
            found.extend(result)
    stale = stale_names(ctx, found)
    return [p for p in found if p.key not in stale]


def stale_names(ctx: dict, found: list[Problem]) -> set[str]:
    """Answers that hold names derived from a refused name: they are derived again, not refused."""
    refused = {problem.key for problem in found} | {key for problem in found for key in problem.also}
    if not refused & {"project_name", "project_slug"}:
        return set()
    return derived_from_slug(ctx) - (refused & {"project_slug"} if ctx.get("project_slug") != SLUG_FALLBACK else set())


def validate(ctx: dict) -> list[str]:
    """``problems`` as plain strings."""
    return [str(problem) for problem in problems(ctx)]


def derived_from_slug(ctx: dict) -> set[str]:
    """The answers that still hold what cookiecutter.json derives from ``project_slug``."""
    slug = str(ctx.get("project_slug", ""))
    derived = {"project_slug": SLUG_FALLBACK, "schema_name": slug, "model_name": f"{slug}_model"}
    return {key for key, value in derived.items() if key in ctx and str(ctx[key]) == value}


def problems_at(key: str, answers: dict) -> list[Problem]:
    """The problems of the answer to ``key``, given the answers so far (for its prompt)."""
    return [p for p in problems(answers) if key == p.key or key in p.also]


NOT_AN_OPTION = "is not an option of this template"


def unknown_keys(given: dict, options: list[str], where: str) -> list[Problem]:
    """A problem for each key of ``given`` that is not one of ``options``, naming the closest option."""
    found = []
    for key, value in given.items():
        if key in options:
            continue
        close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "the options are listed in docs/options.md"
        found.append(Problem(key, value, f"{NOT_AN_OPTION}; {hint}", where=where))
    return found


def check_config_defaults(defaults: dict, variables: dict) -> list[Problem]:
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
        where = CONFIG_FILE_NOTE
        if key not in options:
            close = difflib.get_close_matches(key, options, n=1, cutoff=0.8)
            if close:
                errors.append(Problem(key, value, f"{NOT_AN_OPTION}; did you mean {close[0]}?", where=where))
        elif isinstance(variables[key], list) and value not in variables[key]:
            errors.append(Problem(key, value, f"must be one of {', '.join(map(str, variables[key]))}", where=where))
        elif isinstance(variables[key], bool) and not isinstance(value, bool):
            if str(value).strip().lower() not in BOOL_WORDS:
                errors.append(Problem(key, value, "must be true or false", where=where))
    return errors


CONFIG_FILE_NOTE = "default_context of the cookiecutter config file"
BOOL_WORDS = ("1", "true", "t", "yes", "y", "on", "0", "false", "f", "no", "n", "off")


# --- The command line a user typed ------------------------------------------------------

# Options that take a value, per tool (everything else that starts with "-" is a flag).
VALUE_OPTIONS = {
    "cookiecutter": {
        "-c", "--checkout", "--directory", "--replay-file", "-o", "--output-dir",
        "--config-file", "--debug-file", "--accept-hooks",
    },
    "cruft create": {
        "--output-dir", "--config-file", "--extra-context", "-E", "--extra-context-file",
        "--directory", "-c", "--checkout", "--skip",
    },
    "cruft link": {"-p", "--project-dir", "-c", "--checkout", "--config-file", "--extra-context", "--directory"},
    "cruft update": {
        "-p", "--project-dir", "-t", "--template-path", "-c", "--checkout",
        "--variables-to-update", "--extra-context", "--variables-to-update-file",
    },
}  # fmt: skip
NO_INPUT_FLAGS = {
    "cookiecutter": {"--no-input"},
    "cruft create": {"--no-input", "-y"},
    "cruft link": {"--no-input", "-y"},
}
# Where each tool takes answers: a JSON option, a JSON file option (and the key path of the answers in it).
CONTEXT_OPTIONS = {
    "cruft create": ("--extra-context", "--extra-context-file", "-E"),
    "cruft link": ("--extra-context",),
    "cruft update": ("--variables-to-update", "--extra-context", "--variables-to-update-file"),
}
CONTEXT_FILE_OPTIONS = {"--extra-context-file", "-E", "--variables-to-update-file"}


@dataclass
class CommandLine:
    """What a user typed: the tool, its options, and the answers given on it.

    ``tool`` is ``cookiecutter``, ``cruft create``, ``cruft link``, ``cruft update``, or ""
    when the process is another program (the Python API: nothing to read).
    """

    tool: str = ""
    options: list[tuple[str, str | None]] = field(default_factory=list)  # (option, value or None), in order
    positional: list[str] = field(default_factory=list)
    answers: dict = field(default_factory=dict)
    answers_where: str = ""
    no_input: bool = False
    problems: list[Problem] = field(default_factory=list)  # answers that could not be read

    def value(self, *names: str) -> str | None:
        found = [value for option, value in self.options if option in names]
        return found[-1] if found else None

    @property
    def template(self) -> str | None:
        return (
            self.positional[0]
            if self.tool in ("cookiecutter", "cruft create", "cruft link") and self.positional
            else None
        )

    @property
    def config_file(self) -> str | None:
        """The cookiecutter config file in effect (``--config-file``, else ``COOKIECUTTER_CONFIG``)."""
        if self.tool == "cruft update" or any(option in ("--default-config", "-d") for option, _ in self.options):
            return None
        return self.value("--config-file") or os.environ.get("COOKIECUTTER_CONFIG") or None


def tool_of(argv: list[str]) -> tuple[str, list[str]]:
    """(tool, its arguments) for the command lines of the cookiecutter and cruft CLIs, else ("", [])."""
    if not argv:
        return "", []
    program = os.path.basename(argv[0])
    if program in ("cookiecutter", "cookiecutter.exe") or argv[0].replace("\\", "/").endswith(
        "cookiecutter/__main__.py"
    ):
        return "cookiecutter", argv[1:]
    if program in ("cruft", "cruft.exe") or argv[0].replace("\\", "/").endswith("cruft/__main__.py"):
        for index, word in enumerate(argv[1:], start=1):
            if word in ("create", "link", "update"):
                return f"cruft {word}", argv[index + 1 :]
            if not word.startswith("-"):
                break
    return "", []


def parse_command_line(argv: list[str]) -> CommandLine:
    """Read the answers and options of a cookiecutter or cruft command line (``sys.argv``)."""
    tool, args = tool_of(argv)
    line = CommandLine(tool=tool)
    if not tool:
        return line
    takes_value = VALUE_OPTIONS[tool]
    words = iter(args)
    for word in words:
        if word == "--":
            line.positional.extend(words)
            break
        if word.startswith("--") and "=" in word:
            option, value = word.split("=", 1)
            line.options.append((option, value))
        elif word in takes_value:
            line.options.append((word, next(words, "")))
        elif word.startswith("-") and len(word) > 1:
            line.options.append((word, None))
        else:
            line.positional.append(word)
    line.no_input = any(option in NO_INPUT_FLAGS.get(tool, ()) for option, _ in line.options)
    if tool == "cookiecutter":
        line.answers_where = "command line"
        for word in line.positional[1:]:
            key, sep, value = word.partition("=")
            if sep:
                line.answers[key] = value
        return line
    for option, value in line.options:
        if option not in CONTEXT_OPTIONS[tool] or value is None:
            continue
        try:
            if option in CONTEXT_FILE_OPTIONS:
                with open(value, encoding="utf-8") as handle:
                    given = json.load(handle)
                if option == "--variables-to-update-file":
                    given = (given.get("context") or {}).get("cookiecutter") or {}
            else:
                given = json.loads(value)
        except (OSError, ValueError):
            continue  # cruft itself reports an unreadable file or bad JSON
        if isinstance(given, dict):
            line.answers.update(given)
            line.answers_where = option
    return line


def command_line_problems(line: CommandLine, variables: dict) -> list[Problem]:
    """Keys on the command line that are not options of this template (cookiecutter ignores them)."""
    options = [key for key in variables if not key.startswith("_")]
    given = {key: value for key, value in line.answers.items() if not key.startswith("_")}
    return unknown_keys(given, options, where=line.answers_where)


# --- Refusal: the problems, a file with the answers, a short command that reads it -------

ANSWERS_FILE = "mlops-answers.json"


def retry_answers(ctx: dict, found: list[Problem]) -> dict:
    """Every answer in ``ctx``, the refused ones marked ``<fix me: rule>``.

    Names still derived from a refused slug are left out, so they are derived again.
    """
    marked = {problem.key: problem.marker for problem in reversed(found)}
    stale = stale_names(ctx, found)
    answers = {}
    for key, value in ctx.items():
        if key.startswith("_") or isinstance(value, (dict, list)):
            continue
        if key in stale:
            continue
        answers[key] = marked.get(key, value)
    return answers


def retry(line: CommandLine, ctx: dict, found: list[Problem], path: str = ANSWERS_FILE) -> tuple[dict, str]:
    """(content of the answers file, the command that bakes again from it) for ``line``'s tool."""
    answers = retry_answers(ctx, found)
    kept: list[str] = []
    dropped = {
        "cookiecutter": {"--config-file"},
        "cruft create": {"--extra-context", "--extra-context-file", "-E"},
        "cruft link": {"--extra-context"},
        "cruft update": {"--variables-to-update", "--extra-context", "--variables-to-update-file"},
    }.get(line.tool, set())
    for option, value in line.options:
        if option not in dropped:
            kept += [option] if value is None else [option, value]
    positional = line.positional[:1] if line.tool == "cookiecutter" else line.positional
    if line.tool == "cruft update":
        fixes = {key: value for key, value in answers.items() if key in {p.key for p in found}}
        content: dict = {"context": {"cookiecutter": fixes}}
        words = ["cruft", "update", *kept, "--variables-to-update-file", path]
    elif line.tool == "cruft link":
        content = answers
        words = ["cruft", "link", *positional, *kept]
        return content, " ".join([*map(shlex.quote, words), f'--extra-context "$(cat {shlex.quote(path)})"'])
    elif line.tool.startswith("cruft"):
        content = answers
        words = ["cruft", "create", *positional, *kept, "--extra-context-file", path]
        if "--no-input" not in kept and "-y" not in kept:
            words.append("--no-input")
    else:
        config = {}
        if line.config_file:
            config = {
                key: value for key, value in read_config_file(line.config_file).items() if key != "default_context"
            }
        content = {**config, "default_context": answers}
        words = ["cookiecutter", "--config-file", path, *kept, *(positional or ["<template>"])]
        if "--no-input" not in kept:
            words.insert(3, "--no-input")
    return content, " ".join(shlex.quote(word) for word in words)


def read_config_file(path: str) -> dict:
    """A cookiecutter config file (YAML; JSON is YAML too), or {} when it cannot be read."""
    try:
        import yaml  # cookiecutter's own dependency

        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (OSError, ImportError, ValueError):
        return {}
    except Exception:  # noqa: BLE001 - a YAML error: cookiecutter reports it itself
        return {}
    return config if isinstance(config, dict) else {}


HEADLINE = "ERROR: the project was not generated. Fix these answers and try again:"


def refusal(found: list[Problem], retry_text: str = "") -> str:
    """The message that refuses a bake: every problem, then how to retry."""
    lines = [HEADLINE, *(f"  - {problem}" for problem in found)]
    if retry_text:
        lines += ["", retry_text]
    return "\n".join(lines)
