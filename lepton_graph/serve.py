"""``lepton-graph serve FILE``: an HTTP inference server for an exported artifact, hot-swappable while it serves.

Built on Starlette (ASGI) run by uvicorn, with prometheus_client's metrics (the ``serve`` extra); no HTTP handling
of our own. Requests run on a thread pool (a loaded model takes concurrent calls); ``POST /v1/reload`` and
``--watch`` replace the artifact with ``LoadedModel.swap``: requests in flight finish on the version they started
with, later ones get the new one, and a file that does not fit leaves the old version serving.

    POST /v1/infer    JSON {"args": [...], "kwargs": {...}} (nested lists, converted to each input's exported
                      dtype) -> {"version": n, "artifact": digest, "outputs": ...}; or a safetensors body
                      (Content-Type application/octet-stream: tensors named arg0, arg1, ... and keyword names) ->
                      safetensors of the outputs by pytree path, X-Lepton-Version / X-Lepton-Artifact headers
                      (the version counts this process's swaps; the digest names the file's content everywhere)
    GET  /health      {"status": "ok", "version": n, "artifact": digest}
    GET  /v1/model    version, file, the call signature, the load report
    GET  /metrics     Prometheus text: requests by endpoint and status, latency histogram, model version
    POST /v1/reload   optional JSON {"path": FILE}: swap to that file (default: the file being served)

With ``--max-batch N`` (artifacts exported with ``dynamic=True``), requests that arrive together run as one call on
their inputs concatenated along dim 0 (up to N rows, waiting up to ``--max-wait-ms`` for more) and each gets its rows
back. Bad requests get a 4xx with a message naming the problem (a body that is not JSON or safetensors, wrong shapes or
dtypes, a body over the size limit); the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
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


def batching_off(model: LoadedModel) -> str | None:
    """Why concurrent requests cannot be run as one call of ``model`` (None: they can): every tensor input needs a
    symbolic first dim (exported with ``dynamic=True``)."""
    for i, leaf in enumerate(model._v.leaves):
        if leaf["kind"] == "tensor" and (not leaf.get("dims") or leaf["dims"][0] is not None):
            return f"input {i} has a fixed first dim (export with dynamic=True to batch requests)"
    return None


class _Batcher:
    """Requests that arrive within ``max_wait_s`` of the first, up to ``max_rows`` rows, with the same trailing
    shapes, dtypes and Python values, run as one call on their inputs concatenated along dim 0; each gets its rows
    of every output back. A group whose outputs do not split by rows, or whose call fails, runs request by request
    (so each gets its own answer or error)."""

    def __init__(self, model: Any, max_rows: int, max_wait_s: float, sizes: Any) -> None:
        self.model, self.max_rows, self.max_wait_s, self.sizes = model, max_rows, max_wait_s, sizes
        self.queue: asyncio.Queue[tuple[Any, int, tuple, dict, asyncio.Future]] | None = None

    async def submit(self, args: tuple, kwargs: dict) -> tuple[int, str, Any]:
        key, rows = _batch_key(args, kwargs)
        if key is None or rows > self.max_rows:
            return await _run(self.model(), args, kwargs)
        if self.queue is None:
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._collect())
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self.queue.put((key, rows, args, kwargs, fut))
        return await fut

    async def _collect(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline, rows = loop.time() + self.max_wait_s, batch[0][1]
            while rows < self.max_rows and (left := deadline - loop.time()) > 0:
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                rows += item[1]
            groups: dict[Any, list] = {}
            for item in batch:
                groups.setdefault(item[0], []).append(item)
            for group in groups.values():
                loop.create_task(self._run_group(group))

    async def _run_group(self, group: list) -> None:
        self.sizes.observe(sum(item[1] for item in group))
        if len(group) > 1:
            try:
                n, digest, outs = await _run(self.model(), *_concat([(item[2], item[3]) for item in group]))
                parts = _split(outs, [item[1] for item in group])
            except Exception:  # noqa: BLE001 - each request is run alone below and gets its own error
                parts = None
            if parts is not None:
                for item, part in zip(group, parts, strict=True):
                    if not item[4].done():
                        item[4].set_result((n, digest, part))
                return
        for item in group:
            fut = item[4]
            try:
                result = await _run(self.model(), item[2], item[3])
            except Exception as e:  # noqa: BLE001 - handed to the request's own handler
                if not fut.done():  # a request whose client went away is cancelled: the rest still get answers
                    fut.set_exception(e)
                continue
            if not fut.done():
                fut.set_result(result)


async def _run(model: LoadedModel, args: tuple, kwargs: dict) -> tuple[int, str, Any]:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(model.call_versioned, *args, **kwargs)


def _batch_key(args: tuple, kwargs: dict) -> tuple[Any, int]:
    """(a key equal for requests that can be concatenated, their rows), or (None, 0)."""
    leaves, spec = pytree.tree_flatten((args, kwargs))
    rows: int | None = None
    key: list[Any] = [str(spec)]
    for x in leaves:
        if isinstance(x, torch.Tensor):
            if x.dim() == 0 or (rows is not None and x.shape[0] != rows):
                return None, 0
            rows = x.shape[0]
            key.append((tuple(x.shape[1:]), str(x.dtype)))
        else:
            key.append(("py", repr(x)))
    return (tuple(key), rows) if rows else (None, 0)


def _concat(calls: list[tuple[tuple, dict]]) -> tuple[tuple, dict]:
    flat = [pytree.tree_flatten(c) for c in calls]
    spec = flat[0][1]
    leaves = [
        torch.cat([f[0][i] for f in flat]) if isinstance(flat[0][0][i], torch.Tensor) else flat[0][0][i]
        for i in range(len(flat[0][0]))
    ]
    args, kwargs = pytree.tree_unflatten(leaves, spec)
    return tuple(args), dict(kwargs)


def _split(outs: Any, rows: list[int]) -> list[Any] | None:
    """Each request's rows of every output, or None when an output is not split by rows."""
    leaves, spec = pytree.tree_flatten(outs)
    total = sum(rows)
    if not all(isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == total for x in leaves):
        return None
    pieces = [x.split(rows) for x in leaves]
    return [pytree.tree_unflatten([p[i] for p in pieces], spec) for i in range(len(rows))]


def create_app(
    path: str | Path,
    *,
    max_body_mb: float = 64.0,
    watch: bool = False,
    poll_s: float = 0.2,
    max_batch: int = 1,
    max_wait_ms: float = 2.0,
    workers: int = 1,
) -> Any:
    """The Starlette application serving the artifact at ``path`` (see the module docstring). ``max_batch`` > 1
    runs concurrent requests of a ``dynamic=True`` artifact as one call of up to that many rows, gathered for up
    to ``max_wait_ms`` after the first."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    if workers > 1:  # N processes share the cores: each runs its kernels on its share
        from .backends.cpu import native

        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        if native.available():
            native.set_num_threads(share)
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
    sizes = Histogram(
        "lepton_batch_rows", "rows per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=registry
    )
    state["batching"] = batching_off(state["model"]) if max_batch > 1 else "off (--max-batch 1)"
    batcher = _Batcher(lambda: state["model"], max_batch, max_wait_ms / 1e3, sizes) if not state["batching"] else None

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
            n, digest, out = await (batcher.submit(args, kwargs) if batcher else _run(m, args, kwargs))
            headers = {"X-Lepton-Version": str(n), "X-Lepton-Artifact": digest}
            return Response(st_save(named_outputs(out)), media_type="application/octet-stream", headers=headers)
        if kind != "application/json":
            raise _HTTPError(415, f"content type {kind!r}: send application/json or application/octet-stream")
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _HTTPError(400, f"the body is not JSON ({e})") from None
        args, kwargs = _call_from_json(m, parsed)
        n, digest, out = await (batcher.submit(args, kwargs) if batcher else _run(m, args, kwargs))
        return JSONResponse({"version": n, "artifact": digest, "outputs": _json_value(out)})

    async def health(request: Request) -> Response:
        m = model()
        return JSONResponse({"status": "ok", "version": m.version, "artifact": m.digest})

    async def info(request: Request) -> Response:
        m = model()
        v = m._v
        inputs = [dict(leaf) for leaf in v.leaves]
        return JSONResponse(
            {
                "version": m.version,
                "artifact": m.digest,
                "file": state["path"],
                "inputs": inputs,
                "outputs": v.outputs(),
                "batching": state["batching"] or f"up to {max_batch} rows, waiting up to {max_wait_ms} ms",
                "report": str(m.report()),
            }
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    async def reload(request: Request) -> Response:
        if workers > 1:
            raise _HTTPError(
                409, f"with {workers} worker processes a reload reaches one of them: replace the watched file instead"
            )
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
            except Exception as e:  # noqa: BLE001 - the watch outlives a bad file; the old version serves on
                print(f"lepton-graph serve: {type(e).__name__}: {e}", file=sys.stderr)

    t = threading.Thread(target=loop, name="lepton-watch", daemon=True)
    t.start()
    return t


@contextlib.contextmanager
def serving(path: str | Path, *options: str, timeout_s: float = 90.0) -> Iterator[str]:
    """``lepton-graph serve FILE OPTIONS...`` in a child process on a free loopback port, yielded as its base URL
    once ``/health`` answers (load tests, benchmarks); the process is stopped on exit."""
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = "import sys; from lepton_graph.cli import main; raise SystemExit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", cmd, "serve", str(path), *options, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout_s
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as r:
                    r.read()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode()[-2000:] if proc.stderr and proc.poll() is not None else ""
                    raise RuntimeError(f"lepton-graph serve {path} did not come up: {err}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def app_factory() -> Any:
    """The app of one of ``run(..., workers=N)``'s processes, from the settings the parent left for them."""
    from .config import config

    spec = json.loads(config.serve)
    return create_app(spec["path"], **spec["options"])


def run(path: str, host: str = "127.0.0.1", port: int = 8000, *, workers: int = 1, **options: Any) -> None:
    """Serve until interrupted with uvicorn; ``options`` go to create_app. One process serves requests
    concurrently on its thread pool; ``workers`` > 1 starts that many processes on one port (uvicorn's supervisor),
    each with its own copy of the model and its share of the cores, each following the watched file."""
    import uvicorn

    if workers > 1:
        from .config import config

        config.for_children("serve", json.dumps({"path": str(path), "options": {**options, "workers": workers}}))
        uvicorn.run(
            "lepton_graph.serve:app_factory", factory=True, host=host, port=port, workers=workers, log_level="warning"
        )
        return
    uvicorn.run(create_app(path, **options), host=host, port=port, log_level="warning")
