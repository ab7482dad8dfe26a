"""Golden request logs: what the CLI sends the workspace on deploy and destroy, per pattern.

Every target of each pattern (monitoring and the serving endpoint on) is deployed, then
destroyed, through the real CLI against the fake, which records each request
(``fakeworkspace -requests``, as the CLI's acceptance tests record ``out.requests.txt``). The
requests that change something (every method but GET) are normalised (hosts, ids, times,
versions and the commit replaced; upload bodies reduced to their size class) and compared with
``tests/goldens/requests/<pattern>.txt``. An unexpected DELETE or recreate, a grants ``remove``
list or a changed permissions body shows as a diff. Files the bundle syncs (``.../files/...``)
the CLI's state files and its telemetry are left out: they follow the project's file list, which the
snapshots already show.

Regenerate after an intended change:  make goldens
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import pytest
from realcli import identity_of, pointed_at_fake

# The bundle's synced files and the CLI's own deployment state (file lists, its resource state):
# they follow the project's file list and the CLI's bookkeeping, which other tests cover; and the
# CLI's telemetry (timings).
SKIPPED = re.compile(r"/files(/|$)|/state/(deployment|resources|metadata)\.json|^/telemetry-ext")
GOLDENS = Path(__file__).resolve().parent / "goldens" / "requests"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"
TARGETS = ("dev", "test", "staging", "prod")

REPLACEMENTS = [
    (re.compile(r"http://127\.0\.0\.1:\d+"), "[HOST]"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "[TIME]"),
    (re.compile(r"\b[0-9a-f]{40}\b"), "[SHA]"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "[UUID]"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "[HEXID]"),
    (re.compile(r"\+\d{6,}"), "+[VERSION]"),
    (re.compile(r"\b\d{10,}\b"), "[NUMID]"),
]


def normalised(entry: dict, workspace: str) -> str:
    body = entry.get("body")
    if isinstance(body, str) and body.startswith("<"):
        body = "<file>"
    text = f"{entry['method']} {entry['path']}" + (f"?{entry['query']}" if entry.get("query") else "")
    if body is not None:
        text += " " + json.dumps(body, sort_keys=True)
    text = text.replace(workspace, "[WS]")
    for pattern, replacement in REPLACEMENTS:
        text = pattern.sub(replacement, text)
    return text


def recorded(cli, since: int) -> list[str]:
    """The changing requests of this test's workspace after byte ``since`` of the log."""
    with cli.fake.requests.open() as log:
        log.seek(since)
        entries = [json.loads(line) for line in log if line.strip()]
    lines = [
        normalised(e, cli.name)
        for e in entries
        if e["workspace"] == cli.name and e["method"] != "GET" and not SKIPPED.search(e["path"])
    ]
    return sorted(lines)  # the direct engine deploys independent resources concurrently


@pytest.mark.parametrize("pattern", ["deploy_code", "deploy_models", "hybrid"])
def test_deploy_and_destroy_requests_match_the_goldens(baked, cli, tmp_path, pattern):
    answers = {"deployment_pattern": pattern, "include_monitoring": True, "include_serving_endpoint": True}
    project = pointed_at_fake(baked(project_slug=f"golden_{pattern}", **answers), cli.fake.url, tmp_path / "p")
    cli.prepare(project)
    sections = []
    for command in ("deploy", "destroy"):
        for target in TARGETS:
            since = cli.fake.requests.stat().st_size
            args = ["bundle", command, "-t", target] + (["--auto-approve"] if command == "destroy" else [])
            result = cli.run(args, project, identity_of(target), check=False)
            outcome = "ok" if result.returncode == 0 else "refused"
            lines = "".join(f"{line}\n" for line in recorded(cli, since))
            sections.append(f"## {command} {target}: {outcome}\n{lines}")
    actual = "\n".join(sections)
    golden = GOLDENS / f"{pattern}.txt"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert golden.exists(), f"no golden {golden}: run make goldens"
    expected = golden.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "golden", "now"))
    assert not diff, f"the requests changed (regenerate with make goldens if intended):\n{diff[:20000]}"
