"""Golden snapshots: a fresh bake of each combination in ``bake.SNAPSHOTS`` equals its folder
under tests/snapshots/, so every template change shows in review as a diff of generated files.

The whole project tree is compared, byte for byte (file contents; not file modes). Nothing is
excluded but bytecode caches (``__pycache__``), which a bake does not write: two bakes into
different folders are identical, ``.cookiecutter-replay.json`` included (the hook leaves this
machine's paths out of it), so there is no volatile content to mask.
"""

from __future__ import annotations

import difflib

import pytest
from bake import SNAPSHOT_DIR, SNAPSHOTS, bake, project_files

HINT = "If the change is intended, regenerate the snapshots: python tools/bake.py --update-snapshots"
MAX_LINES = 300


def unified_diff(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """A unified diff from the snapshot to the fresh bake, file by file."""
    lines: list[str] = []
    for path in sorted(expected.keys() | actual.keys()):
        old, new = expected.get(path), actual.get(path)
        if old == new:
            continue
        lines += difflib.unified_diff(
            [] if old is None else old.decode(errors="replace").splitlines(keepends=True),
            [] if new is None else new.decode(errors="replace").splitlines(keepends=True),
            "/dev/null" if old is None else f"snapshot/{path}",
            "/dev/null" if new is None else f"baked/{path}",
        )
    return [line if line.endswith("\n") else line + "\n" for line in lines]


@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
def test_a_fresh_bake_matches_its_snapshot(tmp_path, name):
    snapshot = SNAPSHOT_DIR / name
    assert snapshot.is_dir(), f"no snapshot {snapshot}. {HINT}"
    project = bake(tmp_path, **SNAPSHOTS[name])
    diff = unified_diff(project_files(snapshot), project_files(project))
    shown = "".join(diff[:MAX_LINES]) + (f"... {len(diff) - MAX_LINES} more lines\n" if len(diff) > MAX_LINES else "")
    assert not diff, f"the bake of {name} differs from tests/snapshots/{name}:\n{shown}{HINT}"


def test_the_diff_names_both_sides_and_added_files():
    diff = "".join(unified_diff({"a.yml": b"x: 1\n", "gone.txt": b"old\n"}, {"a.yml": b"x: 2\n", "new.txt": b"n"}))
    assert "--- snapshot/a.yml\n+++ baked/a.yml\n" in diff and "-x: 1\n+x: 2\n" in diff
    assert "--- /dev/null\n+++ baked/new.txt\n" in diff and "--- snapshot/gone.txt\n+++ /dev/null\n" in diff
