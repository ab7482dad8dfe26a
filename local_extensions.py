"""Jinja extensions for this template (loaded through ``_extensions`` in cookiecutter.json).

``quoted`` renders a string as a double-quoted scalar that is valid, and means the
same thing, in YAML, TOML and Python. Use it wherever free text the user typed (the
project name, the description) lands in a generated file.
"""

import json

from jinja2.ext import Extension


def quoted(value: object) -> str:
    """Return ``value`` as a double-quoted string literal for YAML, TOML and Python."""
    return json.dumps(str(value), ensure_ascii=False)


class QuotingExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["quoted"] = quoted


def _pre_gen_hook():
    """hooks/pre_gen_project.py as a module (its rules; ``main`` is not run)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "hooks" / "pre_gen_project.py"
    spec = importlib.util.spec_from_file_location("cookiecutter_databricks_mlops_pre_gen", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _caller() -> tuple[str, str | None, dict]:
    """Which tool is baking, the template argument it was given, and its config's ``default_context``.

    Cookiecutter passes neither its config nor the template argument to the Jinja
    environment. ``cookiecutter.main.cookiecutter`` and cruft's
    ``cruft._commands.utils.cookiecutter.generate_cookiecutter_context`` both hold them
    in locals (``config_dict``; ``template`` or ``template_git_url``) while they prompt,
    so they are read from the calling frames. Another caller gets ("cookiecutter", None, {}).
    """
    import inspect
    from pathlib import Path

    found = ("cookiecutter", None, {})
    frame = inspect.currentframe()
    while frame is not None:
        config = frame.f_locals.get("config_dict")
        if found[1] is None and isinstance(config, dict) and isinstance(config.get("default_context"), dict):
            if "template_git_url" in frame.f_locals:
                found = ("cruft create", str(frame.f_locals["template_git_url"]), config["default_context"])
            else:
                found = ("cookiecutter", frame.f_locals.get("template"), config["default_context"])
        # The cruft command that called it: cruft/_commands/<create|link|update>.py
        path = Path(frame.f_code.co_filename)
        if found[0].startswith("cruft") and path.parent.name == "_commands" and path.parent.parent.name == "cruft":
            found = (f"cruft {path.stem}", *found[1:])
        frame = frame.f_back
    return found


class ValidationExtension(Extension):
    """``refuse_bad_answers``: the template's rules, while cookiecutter collects the answers.

    cookiecutter.json's last variable, ``__answers_checked``, renders this filter once
    every answer is known and before anything is written. A refusal raises
    ``FailedHookException``, which cookiecutter's CLI prints without a traceback.
    """

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["refuse_bad_answers"] = refuse_bad_answers


def refuse_bad_answers(answers: dict) -> str:
    from pathlib import Path

    from cookiecutter.exceptions import FailedHookException

    hook = _pre_gen_hook()
    template_dir = Path(__file__).resolve().parent
    variables = json.loads((template_dir / "cookiecutter.json").read_text())
    ctx = dict(answers)
    if any(key not in ctx for key in variables if not key.startswith("_")):
        # A replay file from before this variable existed: cookiecutter renders it with the
        # missing answers only. The pre-generation hook checks the whole replay.
        return "by the pre-generation hook"
    tool, template, team_defaults = _caller()
    errors = hook.check_config_defaults(team_defaults, variables) + hook.validate(ctx)
    if errors:
        raise FailedHookException(hook.refusal(ctx, errors, template=template, tool=tool))
    return "yes"
