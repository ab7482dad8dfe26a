"""Refuse bad answers before cookiecutter writes the project.

Every rule is a small function that returns an error message (or None). ``validate``
runs them all, so a user sees every problem in one go; ``main`` prints them and exits
with status 1, and cookiecutter then removes the half-made project directory.

The module imports cleanly without cookiecutter: the template tests call ``validate``
directly with hand-made contexts.
"""

from __future__ import annotations

import json
import keyword
import re
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
    examples = {"read_group": "users", "uc_read_group": "account users"}
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
                "use an account-level group such as 'account users'",
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
    return errors


def main() -> int:
    errors = validate(json.loads(CONTEXT_JSON))
    if not errors:
        return 0
    print("ERROR: the project was not generated. Fix these answers and try again:", file=sys.stderr)
    for error in errors:
        print(f"  - {error}", file=sys.stderr)
    print("Pass answers with: cookiecutter <template> --no-input key=value ...", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
