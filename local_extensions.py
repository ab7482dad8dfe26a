"""Jinja extensions for this template (loaded through ``_extensions`` in cookiecutter.json).

``quoted`` renders a string as a double-quoted scalar that is valid, and means the
same thing, in YAML, TOML and Python. Use it wherever free text the user typed (the
project name, the description) lands in a generated file.

``refuse_bad_answers`` applies the template's rules (``template_rules.py``, next to this
file) while cookiecutter collects the answers. cookiecutter.json renders it at three kinds
of places, each a private ``__..._checked`` variable, which cookiecutter renders in file
order between the questions, with the answers so far:

- first, before any question: answers given on the command line for keys the template
  does not have, and the cookiecutter config file's ``default_context``, are refused;
- after each free-text question: in a terminal, a refused answer is explained and asked
  again (the names derived from it are derived from the new answer);
- last, once every answer is known: every problem at once, the answers written to
  ``mlops-answers.json`` (refused ones marked), and a short command that bakes from it.

It reads what the user typed from ``sys.argv`` (the cookiecutter or cruft command line);
for other callers (the Python API) the command line is unknown, so only the answers are
checked.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import tempfile
from pathlib import Path

from jinja2.ext import Extension

TEMPLATE_ROOT = Path(__file__).resolve().parent


def quoted(value: object) -> str:
    """Return ``value`` as a double-quoted string literal for YAML, TOML and Python."""
    return json.dumps(str(value), ensure_ascii=False)


class QuotingExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["quoted"] = quoted


def rules():
    """``template_rules``, imported normally (cookiecutter and cruft put the template root on
    ``sys.path``), and imported again when its file changed: ``cruft update`` renders two
    commits of the template from one folder in one process."""
    if str(TEMPLATE_ROOT) not in sys.path:
        sys.path.append(str(TEMPLATE_ROOT))
    module = importlib.import_module("template_rules")
    digest = hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()
    if getattr(module, "_loaded_digest", digest) != digest:
        module = importlib.reload(module)
    module._loaded_digest = digest
    return module


def variables() -> dict:
    return json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text(encoding="utf-8"))


class ValidationExtension(Extension):
    """The ``refuse_bad_answers`` filter (see the module docstring)."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["refuse_bad_answers"] = refuse_bad_answers
        # For hooks/pre_gen_project.py, which cookiecutter runs from a temporary copy.
        environment.globals["template_rules_folder"] = str(TEMPLATE_ROOT)


# Complete sets of answers rendered in this process (cruft update renders two commits, in order).
COMPLETE_RENDERS: list[str] = []


def interactive(line) -> bool:
    """Whether cookiecutter is asking the questions in a terminal (so a refused answer can be asked again)."""
    if line.tool not in ("cookiecutter", "cruft create", "cruft link") or line.no_input:
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def refuse_bad_answers(answers: dict) -> str:
    """Check ``answers`` (cookiecutter's answers so far, in question order); see the module docstring."""
    template_rules = rules()
    template = variables()
    options = [key for key in template if not key.startswith("_")]
    given = [key for key in answers if not key.startswith("_")]
    line = template_rules.parse_command_line(sys.argv)
    if not given:
        # cruft update renders the project's commit first, where an option added since is unknown:
        # its keys are checked once the new commit's answers are complete (below).
        found = [] if line.tool == "cruft update" else template_rules.command_line_problems(line, template)
        if line.config_file:
            defaults = template_rules.read_config_file(line.config_file).get("default_context") or {}
            if isinstance(defaults, dict):
                found += template_rules.check_config_defaults(defaults, template)
        if found:
            refuse(line, found, template_rules.refusal(found, fix_and_rerun(found, line, template_rules)))
        return ""
    if set(options) - set(answers):
        if interactive(line):
            for key in answered_since_last_check(answers):
                ask_again(key, answers, template_rules, template.get("__prompts__", {}))
        return ""
    found = template_rules.problems(dict(answers))
    if line.tool == "cruft update":
        COMPLETE_RENDERS.append(line.tool)
        if len(COMPLETE_RENDERS) == 2:  # the template's new commit, after the project's own
            found = template_rules.command_line_problems(line, template) + found
    if found:
        refuse(line, found, template_rules.refusal(found, retry_text(line, dict(answers), found, template_rules)))
    return "yes"


def answered_since_last_check(answers: dict) -> list[str]:
    """The free-text answers given since the previous ``__..._checked`` variable, in question order."""
    keys: list[str] = []
    for key in reversed(list(answers)):
        if key.startswith("__") and key.endswith("_checked"):
            break
        if not key.startswith("_") and isinstance(answers[key], str):
            keys.insert(0, key)
    return keys


def ask_again(key: str, answers: dict, template_rules, prompts: dict) -> None:
    """Explain a refused answer and ask for ``key`` again until the rules accept it."""
    from cookiecutter.prompt import read_user_variable

    found = template_rules.problems_at(key, dict(answers))
    while found:
        for problem in found:
            print(f"  ! {problem}")
        answers[key] = read_user_variable(key, answers[key], prompts, "  ")
        found = template_rules.problems_at(key, dict(answers))


def fix_and_rerun(found: list, line, template_rules) -> str:
    if any(problem.where == template_rules.CONFIG_FILE_NOTE for problem in found):
        where = line.config_file or "--config-file or COOKIECUTTER_CONFIG"
        return f"Fix the config file ({where}) and run the same command again."
    return "Fix or remove them and run the same command again."


def retry_text(line, answers: dict, found: list, template_rules) -> str:
    """Write the answers next to where the user runs the command; say how to bake from them."""
    if not line.tool:
        return ""
    if line.tool == "cruft update":
        # Not in the project: cruft update needs a clean working tree.
        path = Path(tempfile.gettempdir()) / template_rules.ANSWERS_FILE
        shown = str(path)
    else:
        path = Path.cwd() / template_rules.ANSWERS_FILE
        shown = template_rules.ANSWERS_FILE
    content, command = template_rules.retry(line, answers, found, shown)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return (
        f"Your answers are in {path}, the refused ones marked <fix me: ...>.\nFix those there and run:\n\n    {command}"
    )


def refuse(line, found: list, message: str) -> None:
    """Stop the bake before anything is written, with ``message`` and no traceback.

    cookiecutter (CLI and Python API) prints a ``FailedHookException`` as its message;
    cruft's CLI would print a traceback, so under cruft the message is printed here.
    """
    if line.tool.startswith("cruft"):
        print(message, file=sys.stderr)
        raise SystemExit(1)
    from cookiecutter.exceptions import FailedHookException

    raise FailedHookException(message)
