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


def source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(CLITEST.iterdir()):
        if path.suffix in (".go", ".mod", ".sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cookiecutter-databricks-mlops" / f"cli-{cli_version()}-{source_digest()}"


@dataclass(frozen=True)
class Binaries:
    databricks: Path
    fakeworkspace: Path
    schema: Path
    version: str


def built() -> Binaries | None:
    folder = cache_dir()
    binaries = Binaries(folder / "databricks", folder / "fakeworkspace", folder / "bundle.schema.json", cli_version())
    return binaries if folder.is_dir() else None


def build(log=print) -> Binaries:
    """Build the CLI and the fake workspace unless the cache has them; return their paths."""
    if (ready := built()) is not None:
        return ready
    if shutil.which("go") is None:
        raise RuntimeError(NO_GO)
    version = cli_version()
    folder = cache_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    try:
        started = time.monotonic()
        log(f"Building the Databricks CLI {version} from the Go module proxy (first time: several minutes)...")
        ldflags = f"-X github.com/databricks/cli/internal/build.buildVersion={version}"
        go = [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            str(work / "databricks"),
            "github.com/databricks/cli",
        ]
        subprocess.run(go, cwd=CLITEST, env=env, check=True)
        log(f"Building the fake workspace ({time.monotonic() - started:.0f}s so far)...")
        go = ["go", "build", "-trimpath", "-o", str(work / "fakeworkspace"), "."]
        subprocess.run(go, cwd=CLITEST, env=env, check=True)
        schema = subprocess.run(
            [str(work / "databricks"), "bundle", "schema"], check=True, capture_output=True, text=True
        ).stdout
        (work / "bundle.schema.json").write_text(schema)
        work.rename(folder)
        log(f"Built the Databricks CLI {version} and the fake workspace in {time.monotonic() - started:.0f}s: {folder}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return built()


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
        os.execv(binaries.fakeworkspace, [str(binaries.fakeworkspace), *argv[1:]])
    print(f"error: unknown command {command!r}: use build or serve", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
