"""Pre-generation hook: the template's rules (template_rules.py) on the final answers.

A thin shim. The rules already ran while cookiecutter collected the answers
(local_extensions.py); this runs them again for bakes that skip the questions
(``--replay-file``), and cookiecutter removes the half-made project when it exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Cookiecutter renders this file with Jinja before running it from a temporary file.
# The JSON can hold any character except an unescaped double quote.
CONTEXT_JSON = r"""{{ cookiecutter | jsonify }}"""
TEMPLATE_ROOT = r"""{{ template_rules_folder | default('') }}"""


def template_root() -> Path:
    """The template's folder: this file's parent's parent, or, run from cookiecutter's temporary
    copy, the folder local_extensions.py was loaded from (rendered into TEMPLATE_ROOT)."""
    here = Path(__file__).resolve().parent
    if here.name == "hooks" and (here.parent / "template_rules.py").is_file():
        return here.parent
    return Path(TEMPLATE_ROOT)


def rules():
    root = template_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import template_rules

    return template_rules


# The names local_extensions.py used before template_rules.py existed. ``cruft update`` renders the
# project's commit first, and Python keeps that commit's local_extensions for the new commit's render:
# a project baked before this change reaches the new rules through these.
def validate(ctx: dict) -> list[str]:
    return rules().validate(ctx)


def check_config_defaults(defaults: dict, variables: dict) -> list[str]:
    return rules().check_config_defaults(defaults, variables)


def refusal(ctx: dict, errors: list[str], template: str | None = None, tool: str = "cookiecutter") -> str:
    return rules().refusal(errors, "Fix them (cruft update --variables-to-update '{...}') and run it again.")


def main() -> int:
    root = template_root()
    if not TEMPLATE_ROOT and not (root / "template_rules.py").is_file():
        # Only during a cruft update from a template version before template_rules.py: that version's
        # local_extensions.py, which Python keeps for the whole update, has already run these rules
        # through the names above, and cannot tell this hook where the template is.
        return 0
    if not (root / "template_rules.py").is_file():
        print(f"ERROR: the pre-generation hook found no template_rules.py in {str(root)!r}", file=sys.stderr)
        return 1
    template_rules = rules()
    ctx = json.loads(CONTEXT_JSON)
    found = template_rules.problems(ctx)
    if not found:
        return 0
    note = "Fix them where the answers came from (the --replay-file, or .cruft.json) and run the command again."
    print(template_rules.refusal(found, note), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
