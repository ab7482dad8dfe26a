"""The local stand-in for a Databricks workspace, at the HTTP boundary of ``databricks-sdk``.

Locally, ``runtime.workspace_client()`` returns ``local_client(<local state>)``: a real
``WorkspaceClient`` whose host is ``StandIn``, a small HTTP server on 127.0.0.1. It answers
the REST calls the serving and quality-monitor code makes (serving endpoints, their
permissions, tables, schemas, data-quality monitors and refreshes), keeps the objects it
was given in ``<local state>/workspace.json``, and records every request: method, path,
query and JSON body. So the job code is the same code locally and on Databricks, and the
SDK's request types, their serialization and its long-running-operation waiters run for
real; only the workspace's side is simplified (updates finish at once). The tables it
knows are the local tables under ``<local state>/warehouse``; any schema exists.

The tests use the same stand-in, empty and in memory (``StandIn()`` and ``serve``).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


@dataclass
class Call:
    method: str
    path: str
    query: dict
    body: dict | None


@dataclass
class StandIn:
    endpoints: dict = field(default_factory=dict)
    permissions: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)  # full name -> table id
    schemas: dict = field(default_factory=dict)  # catalog.schema -> schema id
    monitors: dict = field(default_factory=dict)  # table id -> monitor
    refresh_running: bool = False
    calls: list[Call] = field(default_factory=list)
    state_file: Path | None = None  # where the objects are kept between processes (None: in memory)
    warehouse: Path | None = None  # local tables: <warehouse>/<catalog>/<schema>/<table>
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    KEPT = ("endpoints", "permissions", "monitors")

    @classmethod
    def open(cls, state_dir: Path) -> StandIn:
        """The stand-in of a local state folder, with the objects earlier runs left in it."""
        state_file = Path(state_dir) / "workspace.json"
        kept = json.loads(state_file.read_text()) if state_file.exists() else {}
        objects = {k: kept.get(k, {}) for k in cls.KEPT}
        return cls(**objects, state_file=state_file, warehouse=Path(state_dir) / "warehouse")

    def save(self) -> None:
        if self.state_file is None:
            return
        partial = self.state_file.with_name(self.state_file.name + ".partial")
        partial.write_text(json.dumps({k: getattr(self, k) for k in self.KEPT}, indent=2) + "\n")
        partial.replace(self.state_file)

    def endpoint(self, name: str) -> dict | None:
        return self.endpoints.get(name)

    def table_id(self, name: str) -> str | None:
        """The id of table ``name``: one the test gave, or a local table that has been written."""
        if name in self.tables:
            return self.tables[name]
        parts = name.split(".")
        if self.warehouse is not None and len(parts) == 3 and (self.warehouse.joinpath(*parts) / "_SUCCESS").exists():
            return str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        return None

    def schema_id(self, name: str) -> str | None:
        if name in self.schemas:
            return self.schemas[name]
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name)) if self.warehouse is not None else None

    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of every call that changed something."""
        return [(c.method, c.path) for c in self.calls if c.method != "GET"]

    # --- handlers: (status, JSON body) ------------------------------------------------

    def handle(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "2.0", "serving-endpoints"]:
            return self._serving(method, parts[3:], body)
        if parts[:4] == ["api", "2.0", "permissions", "serving-endpoints"]:
            acl = self.permissions.setdefault(parts[4], [])
            for entry in (body or {}).get("access_control_list", []):
                acl[:] = [e for e in acl if e.get("group_name") != entry.get("group_name")] + [entry]
            return 200, {"object_id": parts[4], "access_control_list": acl}
        if parts[:4] == ["api", "2.1", "unity-catalog", "tables"] and method == "GET":
            name = parts[4]
            if self.table_id(name) is None:
                return _missing(f"Table '{name}' does not exist.")
            return 200, {"full_name": name, "table_id": self.table_id(name)}
        if parts[:4] == ["api", "2.1", "unity-catalog", "schemas"] and method == "GET":
            name = parts[4]
            if self.schema_id(name) is None:
                return _missing(f"Schema '{name}' does not exist.")
            return 200, {"full_name": name, "schema_id": self.schema_id(name)}
        if parts[:4] == ["api", "data-quality", "v1", "monitors"]:
            return self._monitors(method, parts[4:], body)
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"stand-in has no {method} {path}"}

    def _serving(self, method: str, rest: list[str], body: dict | None) -> tuple[int, dict]:
        if method == "POST" and not rest:
            name = body["name"]
            if name in self.endpoints:
                return 409, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": f"Endpoint {name} exists."}
            endpoint = {
                "name": name,
                "id": uuid.uuid4().hex,
                "config": {"config_version": 1, "served_entities": body["config"]["served_entities"]},
                "ai_gateway": body.get("ai_gateway"),
                "tags": body.get("tags", []),
                "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            }
            self.endpoints[name] = endpoint
            return 200, endpoint
        name = rest[0]
        if name not in self.endpoints:
            return _missing(f"Endpoint with name '{name}' does not exist.")
        endpoint = self.endpoints[name]
        if method == "GET" and len(rest) == 1:
            return 200, endpoint
        if method == "DELETE" and len(rest) == 1:
            del self.endpoints[name]
            return 200, {}
        if method == "PUT" and rest[1:] == ["config"]:
            version = endpoint["config"]["config_version"] + 1
            endpoint["config"] = {"config_version": version, "served_entities": body["served_entities"]}
            return 200, endpoint
        if method == "PUT" and rest[1:] == ["ai-gateway"]:
            endpoint["ai_gateway"] = body
            return 200, body
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"stand-in has no {method} serving {rest}"}

    def _monitors(self, method: str, rest: list[str], body: dict | None) -> tuple[int, dict]:
        if method == "POST" and not rest:
            self.monitors[body["object_id"]] = body
            return 200, body
        table_id = rest[1]
        if rest[2:] == ["refreshes"] and method == "POST":
            if self.refresh_running:
                return 409, {"error_code": "RESOURCE_CONFLICT", "message": "A refresh is already running."}
            return 200, {
                "object_type": "table",
                "object_id": table_id,
                "refresh_id": 7,
                "state": "MONITOR_REFRESH_STATE_PENDING",
            }
        if table_id not in self.monitors:
            return _missing(f"Monitor for table id {table_id} does not exist.")
        if method == "GET":
            return 200, self.monitors[table_id]
        if method == "PATCH":
            self.monitors[table_id] = body
            return 200, body
        if method == "DELETE":
            del self.monitors[table_id]
            return 200, {}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"stand-in has no {method} monitors {rest}"}


def _missing(message: str) -> tuple[int, dict]:
    return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message}


def serve(stand_in: StandIn):
    """Start the HTTP server; returns it and a real ``WorkspaceClient`` whose host it is."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            if url.path == "/.well-known/databricks-config":
                # The SDK's host discovery, on every client it makes; without an answer it logs a
                # warning in every local run. Answered as the Databricks CLI's own test server
                # answers it (libs/testserver/server.go, New).
                host = f"http://{self.headers.get('Host')}"
                status, answer = 200, {"oidc_endpoint": f"{host}/oidc", "workspace_id": "900800700600"}
            else:
                with stand_in.lock:
                    stand_in.calls.append(Call(self.command, url.path, parse_qs(url.query), body))
                    status, answer = stand_in.handle(self.command, url.path, body)
                    if self.command != "GET":
                        stand_in.save()
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for the next poll (0.5 s by default, per test).
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host = f"http://127.0.0.1:{server.server_address[1]}"
    config = Config(host=host, token="stand-in", auth_type="pat", retry_timeout_seconds=10)
    return server, WorkspaceClient(config=config)


_local: dict[Path, tuple[StandIn, object]] = {}


def local_client(state_dir: Path):
    """The ``WorkspaceClient`` of local runs: the stand-in of ``state_dir``, one per process."""
    state_dir = Path(state_dir).resolve()
    if state_dir not in _local:
        stand_in = StandIn.open(state_dir)
        _, client = serve(stand_in)
        _local[state_dir] = (stand_in, client)
    return _local[state_dir][1]


def local_endpoint(state_dir: Path, name: str) -> dict | None:
    """The serving endpoint ``name`` as local runs left it, or None."""
    return StandIn.open(state_dir).endpoint(name)
