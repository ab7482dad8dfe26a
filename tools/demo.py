"""Bake a project and run its whole pipeline locally: what `make demo` does.

    python tools/demo.py [--pattern deploy_code|deploy_models|hybrid] [--build-dir build]

Steps: bake with the defaults (and the chosen deployment pattern) into
<build-dir>/demo-<pattern>/, lint the generated code, validate the bundle offline for
every target, then run the local scenario: what CI and the schedules would do, from
training (or promotion) in each environment to batch inference and monitoring in prod.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bake import project_env, rebake

PATTERNS = ("deploy_code", "deploy_models", "hybrid")
BIN = Path(sys.executable).parent


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def check_java() -> None:
    java = shutil.which("java", path=str(Path(os.environ.get("JAVA_HOME", "/nonexistent")) / "bin")) or shutil.which(
        "java"
    )
    if java is None:
        sys.exit("error: local Spark needs Java 17 (java not found on PATH or in JAVA_HOME); install OpenJDK 17")
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    print(f"Java: {version}")


def run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    print("$ " + " ".join(command), flush=True)
    result = subprocess.run(command, cwd=cwd, env=env)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed with exit code {result.returncode}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", choices=PATTERNS, default="deploy_code")
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    args = parser.parse_args()

    started = time.perf_counter()
    check_java()
    step(f"Baking the template (deployment_pattern={args.pattern})")
    project = rebake(args.build_dir / f"demo-{args.pattern}", deployment_pattern=args.pattern)
    print(f"Generated {project}")
    env = project_env(project)

    step("Linting the generated code (ruff)")
    run([str(BIN / "ruff"), "check", "."], project, env)
    run([str(BIN / "ruff"), "format", "--check", "."], project, env)

    step("Validating the bundle offline for every target")
    run([sys.executable, "-m", "mlops_local", "validate"], project, env)

    step("Running the pipeline locally, as CI and the schedules would")
    run([sys.executable, "-m", "mlops_local", "scenario"], project, env)

    print(f"\nDemo finished in {time.perf_counter() - started:.0f}s. Next:")
    print(f"  cd {project}")
    print("  less README.md                                  # what was generated and how to deploy it")
    print(f"  PYTHONPATH=src {sys.executable} -m mlops_local --help   # run single jobs, approve, reset")
    print(f"  make ui PATTERN={args.pattern}   # (from the template folder) MLflow's UI on these runs and models")
    print(
        f"  make demo PATTERN={'deploy_models' if args.pattern == 'deploy_code' else 'deploy_code'}"
        "   # (from the template folder) another deployment pattern"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
