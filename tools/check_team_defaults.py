"""Check a team's cookiecutter config file against this template's rules, before anyone bakes with it.

    python tools/check_team_defaults.py team.yaml [other-team.yaml ...]

For a platform team's own CI, next to its team file (docs/team.yaml is an example). It
refuses what a bake would refuse, and what cookiecutter itself lets through in a config
file: a key that looks like a misspelt option (cookiecutter ignores it), and a value
outside an option's choices or a yes/no option that is neither (cookiecutter warns, then
ignores that key and every key after it). Exit 0 when every file passes; else 1, with
one line per problem naming the file and the key. Needs cookiecutter and PyYAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE_DIR))

import template_rules  # noqa: E402


def template_variables() -> dict:
    return json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))


def answers_with(defaults: dict) -> dict:
    """The answers of a bake that gives only the team's values (project values take their defaults)."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(str(TEMPLATE_DIR / "cookiecutter.json"), default_context=defaults)
    context["cookiecutter"] = {
        key: value
        for key, value in context["cookiecutter"].items()
        if not (key.startswith("__") and key.endswith("_checked"))  # the bake-time checks: these are run below
    }
    return dict(prompt_for_config(context, no_input=True))


def check(path: Path) -> list[str]:
    """One line per problem of the config file at ``path``."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        return [f"{path}: cannot be read as YAML: {error}"]
    defaults = config.get("default_context") if isinstance(config, dict) else None
    if not isinstance(defaults, dict):
        return [f"{path}: has no default_context mapping (see docs/team.yaml)"]
    found = template_rules.check_config_defaults(defaults, template_variables())
    if not found:
        found = [
            problem
            for problem in template_rules.problems(answers_with(defaults))
            if problem.key in defaults or set(problem.also) & set(defaults)
        ]
    return [f"{path}: {problem}" for problem in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config_files", nargs="+", type=Path, metavar="team.yaml")
    args = parser.parse_args(argv)
    lines = [line for path in args.config_files for line in check(path)]
    for line in lines:
        print(line, file=sys.stderr)
    if not lines:
        print(f"OK: {', '.join(map(str, args.config_files))}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
