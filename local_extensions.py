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
