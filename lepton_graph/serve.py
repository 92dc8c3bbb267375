"""``lepton-graph serve FILE``: an HTTP inference server for an exported artifact, hot-swappable while it serves.

Built on Starlette (ASGI) run by uvicorn, with prometheus_client's metrics (the ``serve`` extra); no HTTP handling
of our own. Requests run on a thread pool (a loaded model takes concurrent calls); ``POST /v1/reload`` and
``--watch`` replace the artifact with ``LoadedModel.swap``: requests in flight finish on the version they started
with, later ones get the new one, and a file that does not fit leaves the old version serving.

    POST /v1/infer    JSON {"args": [...], "kwargs": {...}} (nested lists, converted to each input's exported
                      dtype) -> {"version": n, "outputs": ...}; or a safetensors body (Content-Type
                      application/octet-stream: tensors named arg0, arg1, ... and keyword names) -> safetensors
                      of the outputs by pytree path, the version in the X-Lepton-Version header
    GET  /health      {"status": "ok", "version": n}
    GET  /v1/model    version, file, the call signature, the load report
    GET  /metrics     Prometheus text: requests by endpoint and status, latency histogram, model version
    POST /v1/reload   optional JSON {"path": FILE}: swap to that file (default: the file being served)

Bad requests get a 4xx with a message naming the problem (a body that is not JSON or safetensors, wrong shapes or
dtypes, a body over the size limit); the server keeps serving.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from .artifact import LoadedModel, load
from .artifact.commands import call_of, named_outputs
from .errors import ArtifactError, InputError, LeptonError

SAFETENSORS_TYPES = ("application/octet-stream", "application/x-safetensors", "application/safetensors")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _json_value(x: Any) -> Any:
    """A call's output as JSON: tensors as nested lists, containers (ModelOutput included) as lists / objects."""
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_value(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise _HTTPError(500, f"an output of type {type(x).__name__} cannot be written as JSON (ask for safetensors)")


def _call_from_json(model: LoadedModel, body: Any) -> tuple[tuple, dict]:
    """(args, kwargs) for ``model`` from {"args": [...], "kwargs": {...}}: each input leaf found by its path in the
    exported call, lists made tensors of the dtype that input was exported with."""
    if not isinstance(body, dict) or not set(body) <= {"args", "kwargs"}:
        raise _HTTPError(400, 'the JSON body must be an object {"args": [...], "kwargs": {...}}')
    root = (body.get("args", []), body.get("kwargs", {}))
    if not isinstance(root[0], list) or not isinstance(root[1], dict):
        raise _HTTPError(400, '"args" must be a list and "kwargs" an object')
    v = model._v
    paths = [p for p, _ in pytree.tree_flatten_with_path(pytree.tree_unflatten([0] * len(v.leaves), v.in_spec))[0]]
    leaves = []
    for path, leaf in zip(paths, v.leaves, strict=True):
        node: Any = root
        keys: list[Any] = [k.idx if isinstance(k, pytree.SequenceKey) else getattr(k, "key", None) for k in path]
        name = ("args" if keys[0] == 0 else "kwargs") + pytree.keystr(path[1:])
        try:
            for key in keys:
                node = node[key]
        except (IndexError, KeyError, TypeError):
            if leaf["kind"] == "py":  # a Python value the artifact was exported with may be left out
                leaves.append(leaf["value"])
                continue
            raise _HTTPError(400, f"input {name} is missing") from None
        if leaf["kind"] == "py":
            leaves.append(node)
            continue
        try:
            leaves.append(torch.tensor(node, dtype=getattr(torch, leaf["dtype"])))
        except (TypeError, ValueError, RuntimeError) as e:
            raise _HTTPError(400, f"input {name}: not a rectangular array of numbers ({e})") from None
    args, kwargs = pytree.tree_unflatten(leaves, v.in_spec)
    return tuple(args), dict(kwargs)


def create_app(path: str | Path, *, max_body_mb: float = 64.0, watch: bool = False, poll_s: float = 0.2) -> Any:
    """The Starlette application serving the artifact at ``path`` (see the module docstring)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state: dict[str, Any] = {"path": str(path), "seen": _stat(str(path)), "model": load(path)}
    max_body = int(max_body_mb * 2**20)
    registry = CollectorRegistry()
    requests = Counter("lepton_requests", "requests by endpoint and status", ["endpoint", "status"], registry=registry)
    latency = Histogram(
        "lepton_request_seconds",
        "request latency",
        ["endpoint"],
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
        registry=registry,
    )
    version = Gauge("lepton_model_version", "version of the artifact being served (1 + swaps)", registry=registry)
    version.set(1)

    def model() -> LoadedModel:
        return state["model"]

    swapping = threading.Lock()

    def swap(new_path: str) -> int:
        """Swap to ``new_path`` (reload or watch: one at a time); the watch follows the file being served."""
        with swapping:
            seen = _stat(new_path)  # before loading: a change during the load is seen and swapped in next
            n = model().swap(new_path)
            state["path"], state["seen"] = new_path, seen
            version.set(n)
            return n

    async def measured(endpoint: str, request: Request, handler: Any) -> Response:
        t0 = time.perf_counter()
        try:
            response = await handler(request)
        except _HTTPError as e:
            response = JSONResponse({"error": e.message}, status_code=e.status)
        except InputError as e:
            response = JSONResponse({"error": str(e)}, status_code=422)
        except LeptonError as e:
            response = JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=500)
        requests.labels(endpoint, str(response.status_code)).inc()
        latency.labels(endpoint).observe(time.perf_counter() - t0)
        return response

    async def body_of(request: Request) -> bytes:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body:
            raise _HTTPError(413, f"the body is {int(size)} bytes, more than the server's limit of {max_body}")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_body:
                raise _HTTPError(413, f"the body is more than the server's limit of {max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def infer(request: Request) -> Response:
        body = await body_of(request)
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        m = model()
        if kind in SAFETENSORS_TYPES:
            from safetensors.torch import load as st_load
            from safetensors.torch import save as st_save

            try:
                tensors = st_load(body)
            except Exception as e:  # noqa: BLE001 - any parse failure is the client's body
                raise _HTTPError(400, f"the body is not safetensors ({type(e).__name__}: {e})") from None
            args, kwargs = call_of(tensors)
            n, out = await run_in_threadpool(m.call_versioned, *args, **kwargs)
            return Response(
                st_save(named_outputs(out)), media_type="application/octet-stream", headers={"X-Lepton-Version": str(n)}
            )
        if kind != "application/json":
            raise _HTTPError(415, f"content type {kind!r}: send application/json or application/octet-stream")
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _HTTPError(400, f"the body is not JSON ({e})") from None
        args, kwargs = _call_from_json(m, parsed)
        n, out = await run_in_threadpool(m.call_versioned, *args, **kwargs)
        return JSONResponse({"version": n, "outputs": _json_value(out)})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": model().version})

    async def info(request: Request) -> Response:
        m = model()
        v = m._v
        inputs = [dict(leaf) for leaf in v.leaves]
        return JSONResponse(
            {
                "version": m.version,
                "file": state["path"],
                "inputs": inputs,
                "outputs": v.outputs(),
                "report": str(m.report()),
            }
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    async def reload(request: Request) -> Response:
        body = await body_of(request)
        new_path: str = state["path"]
        if body.strip():
            try:
                parsed = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise _HTTPError(400, f"the body is not JSON ({e})") from None
            if not isinstance(parsed, dict) or not isinstance(parsed.get("path", new_path), str):
                raise _HTTPError(400, 'the body must be {"path": "FILE"} or empty')
            new_path = str(parsed.get("path", new_path))
        try:
            n = await run_in_threadpool(swap, new_path)
        except ArtifactError as e:
            raise _HTTPError(409, str(e)) from None
        return JSONResponse({"version": n, "file": new_path})

    def route(path_: str, endpoint: str, handler: Any, methods: list[str]) -> Route:
        async def wrapped(request: Request) -> Response:
            return await measured(endpoint, request, handler)

        return Route(path_, wrapped, methods=methods)

    app = Starlette(
        routes=[
            route("/v1/infer", "infer", infer, ["POST"]),
            route("/health", "health", health, ["GET"]),
            route("/v1/model", "model", info, ["GET"]),
            route("/metrics", "metrics", metrics, ["GET"]),
            route("/v1/reload", "reload", reload, ["POST"]),
        ]
    )
    app.state.lepton = state
    if watch:
        _watch(state, swap, poll_s)
    return app


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _watch(state: dict[str, Any], swap: Any, poll_s: float) -> threading.Thread:
    """Swap to the served file whenever it is replaced (``lepton-graph export`` writes atomically: a new inode);
    after a reload to another file, that file is the one watched. A file that fails to load is reported on stderr
    and the old version keeps serving (the same file is not tried again until it changes)."""
    import sys

    def loop() -> None:
        while True:
            time.sleep(poll_s)
            now = _stat(state["path"])
            if now is None or now == state["seen"]:
                continue
            state["seen"] = now
            try:
                n = swap(state["path"])
                print(f"lepton-graph serve: {state['path']} changed: now serving version {n}", file=sys.stderr)
            except ArtifactError as e:
                print(f"lepton-graph serve: {e}", file=sys.stderr)

    t = threading.Thread(target=loop, name="lepton-watch", daemon=True)
    t.start()
    return t


def run(
    path: str, host: str = "127.0.0.1", port: int = 8000, *, watch: bool = False, max_body_mb: float = 64.0
) -> None:
    """Serve until interrupted (uvicorn, one process; requests run concurrently on its thread pool)."""
    import uvicorn

    app = create_app(path, watch=watch, max_body_mb=max_body_mb)
    uvicorn.run(app, host=host, port=port, log_level="warning")
