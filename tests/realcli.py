"""Run the real Databricks CLI on baked projects against the CLI's own fake workspace.

``tools/cli_build.py`` builds both; this module starts the fake, makes a copy of a baked
project that points at it (the targets hard-code ``workspace.host``, which overrides
``DATABRICKS_HOST``), and runs ``databricks`` in that copy as a user or a service principal.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cli_build import FAKE_SERVICE_PRINCIPAL, Binaries, fake_command

# Identities of the fake (testserver): a dbapi0 token is the user tester@databricks.com, a
# dbapi1 token the service principal FAKE_SERVICE_PRINCIPAL; the rest of the token names
# the fake workspace, so one suffix is one workspace for both identities.
USER, SERVICE_PRINCIPAL = "dbapi0", "dbapi1"
_workspaces = itertools.count(1)


class FakeWorkspace:
    """The fakeworkspace process: its URL, and whether any request reached a missing route."""

    def __init__(self, binaries: Binaries, log: Path, *flags: str):
        self.log = log
        self._log = log.open("w")
        self.process = subprocess.Popen(
            fake_command(binaries, *flags), stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.process.kill()
            raise RuntimeError(f"the fake workspace did not start: {log.read_text()[-2000:]}")

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._log.close()
        return code, self.log.read_text()


@dataclass
class Session:
    """One fake workspace of the running fake, and the CLI commands run in it."""

    binaries: Binaries
    fake: FakeWorkspace
    home: Path
    name: str = field(default_factory=lambda: f"ws{next(_workspaces):04d}")

    def env(self, identity: str, **extra: str | None) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)  # uv, which builds the wheel
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABRICKS_", "BUNDLE_VAR_", "ARM_", "AZURE_", "GOOGLE_"))
        }
        env.update(
            PATH=os.pathsep.join([str(self.binaries.databricks.parent), venv_bin, env.get("PATH", "")]),
            HOME=str(self.home),
            DATABRICKS_HOST=self.fake.url,
            DATABRICKS_TOKEN=f"{identity}{self.name}",
            DATABRICKS_CACHE_DIR=str(self.home / "cache"),
            DATABRICKS_CLI_DISABLE_UPDATE_CHECK="true",
            DATABRICKS_RATE_LIMIT="1000000",
        )
        if identity == SERVICE_PRINCIPAL:
            # CI deploys test, staging and prod as the target's own principal: here that is
            # the fake's one service principal, so the target's principal is set to it.
            env["BUNDLE_VAR_service_principal"] = FAKE_SERVICE_PRINCIPAL
        env.update(extra)  # a value of None removes the variable
        return {key: value for key, value in env.items() if value is not None}

    def run(
        self, args: list[str], cwd: Path, identity: str = USER, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.binaries.databricks), *args],
            cwd=cwd,
            env=self.env(identity, **extra),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"databricks {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def prepare(self, project: Path) -> None:
        """What a workspace holds before a project's first deploy: the catalogs and the schema of
        its targets (created as a workspace admin would), and its data."""
        bundle = yaml.safe_load((project / "databricks.yml").read_text())
        schema = bundle["variables"]["schema"]["default"]
        for target in bundle["targets"].values():
            catalog = (target.get("variables") or {}).get("catalog")
            if catalog:
                self._post("/api/2.1/unity-catalog/catalogs", {"name": catalog})
                self._post("/api/2.1/unity-catalog/schemas", {"name": schema, "catalog_name": catalog})
        self.use_data_of(project)

    def use_data_of(self, project: Path) -> None:
        """The workspace's tables are the project's development stand-in (``stand_in.py``): the
        fake's own setup route, as a real workspace holds its data before jobs run."""
        self._post("/fake/data", {"project": str(project)})

    def _post(self, path: str, body: dict) -> None:
        request = urllib.request.Request(
            self.fake.url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {USER}{self.name}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30):
                pass
        except urllib.error.HTTPError as error:
            if error.code != 409:  # already there
                raise

    def json(self, args: list[str], cwd: Path, identity: str = USER, **extra: str):
        return json.loads(self.run([*args, "-o", "json"], cwd, identity, **extra).stdout)

    def shell(self, shell: list[str], script: str, cwd: Path, identity: str, env: dict[str, str]):
        """A CI step's script, run by ``shell`` as its platform runs it, with the job's environment
        (its Databricks settings replaced by the fake's)."""
        step_file = self.home / "step.sh"
        step_file.write_text(script)
        job_env = {k: v for k, v in env.items() if not k.startswith("DATABRICKS_")}
        return subprocess.run(
            [*shell, str(step_file)],
            cwd=cwd,
            env={**self.env(identity), **job_env, "PATH": self.env(identity)["PATH"]},
            capture_output=True,
            text=True,
            timeout=600,
        )


def identity_of(target: str) -> str:
    """dev is deployed by a person; test, staging and prod by their service principal."""
    return USER if target == "dev" else SERVICE_PRINCIPAL


HOST_LINE = re.compile(r"^(\s+host:\s*)\S.*$", re.M)


def pointed_at_fake(project: Path, url: str, dest: Path, git: bool = True, principals: tuple[str, ...] = ()) -> Path:
    """A copy of ``project`` whose targets talk to the fake, committed in a fresh git repository.

    ``principals``: application IDs to replace, in every file, with the fake's service
    principal (CI files name their target's principal too, e.g. in a deployment root).
    """
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns(".venv", ".databricks", "dist", "__pycache__"))
    point_bundle_at(dest, url)
    lock_from_runtime(dest)
    for path in dest.rglob("*") if principals else ():
        if path.is_file() and path.suffix in (".yml", ".yaml", ".md", ".json", ".toml", ".txt"):
            text = path.read_text()
            for principal in principals:
                text = text.replace(principal, FAKE_SERVICE_PRINCIPAL)
            path.write_text(text)
    if git:
        commit_all(dest)
    return dest


REQUIREMENTS_FILE = "dist/requirements-jobs.txt"  # what staging and prod jobs install (databricks.yml)
EXPORT = ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt"]


def lock_from_runtime(project: Path) -> None:
    """A uv.lock pinning each dependency of ``project`` to the version the runtime has (this
    .venv stands in for it), with made-up hashes, and the requirements file staging and prod
    jobs install, exported from it as the deploy jobs export it. The real lock needs the
    package index; this one is written offline."""
    import hashlib
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    def name_of(text: str) -> str:
        return re.sub(r"[-_.]+", "-", text).lower()

    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in meta["dependencies"]]
    blocks = ['version = 1\nrevision = 3\nrequires-python = ">=3.11"\n']
    for requirement in sorted(requirements, key=lambda r: name_of(r.name)):
        name = name_of(requirement.name)
        try:
            pinned = version(requirement.name)
        except PackageNotFoundError:  # not in the stand-in runtime (feature engineering): its lowest version
            pinned = next((s.version for s in requirement.specifier if s.operator in (">=", "==")), "0")
        digest = hashlib.sha256(f"{name}=={pinned}".encode()).hexdigest()
        url = f"https://files.pythonhosted.org/packages/{name.replace('-', '_')}-{pinned}-py3-none-any.whl"
        blocks.append(
            f'[[package]]\nname = "{name}"\nversion = "{pinned}"\nsource = {{ registry = "https://pypi.org/simple" }}\n'
            f'wheels = [\n    {{ url = "{url}", hash = "sha256:{digest}", size = 1 }},\n]\n'
        )
    dependencies = "".join(f'    {{ name = "{name_of(r.name)}" }},\n' for r in requirements)
    specs = ", ".join(f'{{ name = "{name_of(r.name)}", specifier = "{r.specifier}" }}' for r in requirements)
    blocks.append(
        f'[[package]]\nname = "{name_of(meta["name"])}"\nversion = "{meta["version"]}"\nsource = {{ editable = "." }}\n'
        f"dependencies = [\n{dependencies}]\n\n[package.metadata]\nrequires-dist = [{specs}]\n"
    )
    (project / "uv.lock").write_text("\n".join(blocks))
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [str(uv), *EXPORT[1:], "--quiet", "--output-file", REQUIREMENTS_FILE],
        cwd=project,
        env={**os.environ, "UV_NO_CONFIG": "1", "UV_OFFLINE": "1"},
        check=True,
        capture_output=True,
    )


def point_bundle_at(project: Path, url: str) -> None:
    """Rewrite the targets' hosts in ``project``'s databricks.yml to the fake's ``url``."""
    bundle = project / "databricks.yml"
    bundle.write_text(HOST_LINE.sub(lambda m: m.group(1) + url, bundle.read_text()))


def head_of(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def commit_all(repo: Path, message: str = "baked") -> None:
    git = ["git", "-C", str(repo), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    if not (repo / ".git").exists():
        subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)
