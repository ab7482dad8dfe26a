"""The real Databricks CLI and the CLI's own fake workspace, built from clitest/ for the tests.

    python tools/cli_build.py build     build both (once per version and source), print their paths
    python tools/cli_build.py serve     run the fake workspace in the foreground (prints its URL)

clitest/go.mod requires github.com/databricks/cli at the one CLI version this template pins;
its go.sum, from the Go checksum database, is committed. The CLI is built from that module
(`go build github.com/databricks/cli`, its `tool` directive), the fake workspace is the small
program in clitest/ around github.com/databricks/cli/libs/testserver. Both land in a cache
folder keyed by the CLI version and a digest of clitest/, written whole or not at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLITEST = REPO / "clitest"
# The identity the fake workspace gives a service principal's token (testserver.TestUserSP).
FAKE_SERVICE_PRINCIPAL = "aaaaaaaa-bbbb-4ccc-dddd-eeeeeeeeeeee"
NO_GO = (
    "the real-CLI tests need Go 1.26 on PATH (they build the Databricks CLI from the Go module proxy): "
    "install Go, then run make test again"
)


def cli_version() -> str:
    """The pinned CLI version, from clitest/go.mod (without the leading v)."""
    match = re.search(r"^require github\.com/databricks/cli v(\S+)$", (CLITEST / "go.mod").read_text(), re.M)
    if not match:
        raise SystemExit("clitest/go.mod does not require github.com/databricks/cli on one line")
    return match.group(1)


def digest(suffixes: tuple[str, ...]) -> str:
    """A digest of clitest/'s files with these suffixes."""
    sha = hashlib.sha256()
    for path in sorted(CLITEST.iterdir()):
        if path.suffix in suffixes:
            sha.update(path.name.encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()[:12]


def cache_dir() -> Path:
    """The CLI's folder: keyed by its version and clitest/go.mod and go.sum."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cookiecutter-databricks-mlops" / f"cli-{cli_version()}-{digest(('.mod', '.sum'))}"


@dataclass(frozen=True)
class Binaries:
    databricks: Path
    fakeworkspace: Path
    schema: Path
    version: str


def _paths() -> Binaries:
    """Where the cache keeps the CLI, its schema and the fake workspace (built or not)."""
    folder = cache_dir()
    return Binaries(
        databricks=folder / "databricks",
        fakeworkspace=folder / f"fakeworkspace-{digest(('.go', '.mod', '.sum'))}",
        schema=folder / "bundle.schema.json",
        version=cli_version(),
    )


def built() -> Binaries | None:
    binaries = _paths()
    return binaries if binaries.databricks.exists() and binaries.fakeworkspace.exists() else None


def _go_build(package: str, output: Path, *flags: str) -> None:
    """`go build` into a temporary file renamed into place: the output is whole or absent."""
    partial = output.with_name(f"{output.name}.{os.getpid()}.partial")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    try:
        subprocess.run(
            ["go", "build", "-trimpath", *flags, "-o", str(partial), package], cwd=CLITEST, env=env, check=True
        )
        partial.rename(output)  # a concurrent build of the same sources renames the same bytes
    finally:
        partial.unlink(missing_ok=True)


def build(log=print) -> Binaries:
    """Build the CLI and the fake workspace unless the cache has them; return their paths."""
    if (ready := built()) is not None:
        return ready
    if shutil.which("go") is None:
        raise RuntimeError(NO_GO)
    binaries = _paths()
    folder = binaries.databricks.parent
    started = time.monotonic()
    if not binaries.databricks.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        try:
            version = binaries.version
            log(f"Building the Databricks CLI {version} from the Go module proxy (first time: several minutes)...")
            ldflags = f"-X github.com/databricks/cli/internal/build.buildVersion={version}"
            _go_build("github.com/databricks/cli", work / "databricks", "-ldflags", ldflags)
            schema = subprocess.run(
                [str(work / "databricks"), "bundle", "schema"], check=True, capture_output=True, text=True
            ).stdout
            (work / "bundle.schema.json").write_text(schema)
            shutil.rmtree(folder, ignore_errors=True)
            work.rename(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not binaries.fakeworkspace.exists():
        log("Building the fake workspace...")
        _go_build(".", binaries.fakeworkspace)
    log(
        f"Databricks CLI {binaries.version} and the fake workspace ready in {time.monotonic() - started:.0f}s: {folder}"
    )
    return binaries


def fake_command(binaries: Binaries, *extra: str) -> list[str]:
    """The fake workspace's command line: its job runs execute tasks with this Python (the
    template's environment, the stand-in for the runtime) and the local runner's package."""
    return [
        str(binaries.fakeworkspace),
        "-python",
        sys.executable,
        "-worker",
        str(REPO / "clitest" / "jobworker.py"),
        "-runtime",
        str(REPO / "{{cookiecutter.project_slug}}" / "src"),
        *extra,
    ]


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "build"
    try:
        binaries = build(log=lambda line: print(line, file=sys.stderr))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if command == "build":
        for name in ("databricks", "fakeworkspace", "schema"):
            print(f"{name:14} {getattr(binaries, name)}")
        return 0
    if command == "serve":
        command = fake_command(binaries, *argv[1:])
        os.execv(command[0], command)
    print(f"error: unknown command {command!r}: use build or serve", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
