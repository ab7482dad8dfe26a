"""Real Databricks CLI figures on this machine: `bundle validate --strict` and `bundle deploy`
per target of a baked project, against the CLI's own fake workspace (what `make bench` prints
after the local figures).

    python tools/bench_cli.py [--repeat 5] [--pattern hybrid]

Each figure is the median wall time over --repeat runs of the command in a fresh process; a
deploy includes building the wheel (`uv build --wheel`) and is a redeploy after the first (the
first deploy of each target is timed apart). Goals: validate under 1 s, deploy under 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bake import bake  # noqa: E402
from cli_build import build  # noqa: E402
from realcli import FakeWorkspace, Session, identity_of, pointed_at_fake  # noqa: E402

TARGETS = ("dev", "test", "staging", "prod")
GOALS = {"validate": 1.0, "deploy": 3.0}


def timed(session: Session, args: list[str], project: Path, identity: str) -> float:
    started = time.perf_counter()
    session.run(args, project, identity)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pattern", default="hybrid", choices=["deploy_code", "deploy_models", "hybrid"])
    args = parser.parse_args()

    started = time.perf_counter()
    binaries = build(log=lambda line: print(line, file=sys.stderr))
    print(f"Databricks CLI {binaries.version} and fake workspace ready in {time.perf_counter() - started:.1f}s")
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        root = Path(tmp)
        answers = {"deployment_pattern": args.pattern, "include_monitoring": True, "include_serving_endpoint": True}
        baked = bake(root / "baked", project_slug="bench_cli", **answers)
        fake = FakeWorkspace(binaries, root / "fake.log")
        try:
            home = root / "home"
            home.mkdir()
            session = Session(binaries, fake, home)
            project = pointed_at_fake(baked, fake.url, root / "project")
            session.prepare(project)
            print(f"\n{args.pattern}, every optional resource; median of {args.repeat} (goal)")
            print(f"{'target':10}{'validate --strict':>20}{'first deploy':>16}{'deploy':>12}")
            verdicts = []
            for target in TARGETS:
                who = identity_of(target)
                validate = [
                    timed(session, ["bundle", "validate", "--strict", "-t", target], project, who)
                    for _ in range(args.repeat)
                ]
                first = timed(session, ["bundle", "deploy", "-t", target], project, who)
                deploy = [timed(session, ["bundle", "deploy", "-t", target], project, who) for _ in range(args.repeat)]
                v, d = statistics.median(validate), statistics.median(deploy)
                verdicts += [v < GOALS["validate"], d < GOALS["deploy"]]
                print(
                    f"{target:10}{v:>16.2f} s ({'ok' if v < GOALS['validate'] else 'over'}){first:>10.2f} s"
                    f"{d:>8.2f} s ({'ok' if d < GOALS['deploy'] else 'over'})"
                )
        finally:
            code, log = fake.stop()
        if code != 0:
            print(f"the fake workspace reported failed requests:\n{log[-2000:]}", file=sys.stderr)
            return 1
    print(f"\n{sum(verdicts)} of {len(verdicts)} figures within their goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
