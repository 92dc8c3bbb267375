"""`lepton-graph serve` (lepton_graph/serve.py) over loopback: inference in JSON and safetensors, health, model,
metrics, clear 4xx errors that leave the server serving, and hot swaps (reload and --watch) under concurrent load
with no failed request and every answer equal to the version it reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch

from lepton_graph.backends.cpu import native

from .calls import mlp_versions

serving = pytest.importorskip("lepton_graph.serve").serving

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")


class Server:
    """A uvicorn server for ``create_app(path, ...)`` on a free loopback port, in a thread."""

    def __init__(self, path: Path, **options: Any) -> None:
        from lepton_graph.serve import create_app

        self.app = create_app(path, **options)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def request(self, path: str, body: bytes | None = None, kind: str = "application/json") -> tuple[int, Any, dict]:
        req = urllib.request.Request(self.url + path, data=body, headers={"Content-Type": kind} if body else {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, data, headers = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, data, headers = e.code, e.read(), dict(e.headers)
        ctype = headers.get("content-type", "")
        return status, json.loads(data) if ctype.startswith("application/json") else data, headers

    def infer(self, x: torch.Tensor) -> tuple[int, Any]:
        status, data, _ = self.request("/v1/infer", json.dumps({"args": [x.tolist()]}).encode())
        return status, data

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], torch.Tensor, list[torch.Tensor]]:
    return mlp_versions(tmp_path_factory.mktemp("serve"), 6)


def test_infer_health_model_and_metrics(versions) -> None:
    from safetensors.torch import load, save

    paths, x, outs = versions
    s = Server(paths[0])
    try:
        status, data = s.infer(x)
        assert status == 200 and data["version"] == 1
        assert torch.equal(torch.tensor(data["outputs"], dtype=torch.float32), outs[0])
        status, body, headers = s.request("/v1/infer", save({"arg0": x}), "application/octet-stream")
        assert status == 200 and headers["x-lepton-version"] == "1" and torch.equal(load(body)["out"], outs[0])
        assert s.request("/health")[:2] == (
            200,
            {"status": "ok", "version": 1, "artifact": s.app.state.lepton["model"].digest},
        )
        status, info, _ = s.request("/v1/model")
        assert status == 200 and info["inputs"][0]["shape"] == [8, 16] and info["outputs"] == ["f32[8, 4]"]
        assert "lepton_graph artifact" in info["report"]
        status, text, _ = s.request("/metrics")
        text = text.decode()
        assert status == 200 and 'lepton_requests_total{endpoint="infer",status="200"} 2.0' in text
        assert "lepton_request_seconds_bucket" in text and "lepton_model_version 1.0" in text
    finally:
        s.close()


def test_bad_requests_get_4xx_naming_the_problem_and_the_server_keeps_serving(versions) -> None:
    paths, x, outs = versions
    s = Server(paths[0], max_body_mb=0.01)
    try:
        for body, kind, status, says in (
            (b"{not json", "application/json", 400, "not JSON"),
            (b'{"args": [], "other": 1}', "application/json", 400, "must be an object"),
            (b'{"args": []}', "application/json", 400, "input args[0] is missing"),
            (json.dumps({"args": [[[1.0, 2.0], [3.0]]]}).encode(), "application/json", 400, "not a rectangular"),
            (json.dumps({"args": [torch.zeros(8, 15).tolist()]}).encode(), "application/json", 422, "shape"),
            (b"junk", "application/octet-stream", 400, "not safetensors"),
            (b"a=1", "application/x-www-form-urlencoded", 415, "content type"),
            (json.dumps({"args": [torch.zeros(400, 16).tolist()]}).encode(), "application/json", 413, "limit"),
        ):
            got, data, _ = s.request("/v1/infer", body, kind)
            assert got == status and says in data["error"], (body[:40], data)
        status, data = s.infer(x)
        assert status == 200 and torch.equal(torch.tensor(data["outputs"]), outs[0])
        status, data, _ = s.request("/v1/reload", json.dumps({"path": str(paths[0]) + ".missing"}).encode())
        assert status == 409 and "cannot read artifact" in data["error"]
        assert s.request("/health")[1]["version"] == 1
    finally:
        s.close()


def test_hot_swaps_under_load_lose_no_request(versions, tmp_path: Path) -> None:
    """8 clients post without pause while the served artifact is replaced 5 times, alternately by replacing the
    watched file atomically (as `lepton-graph export` writes) and by POST /v1/reload to another file (which is then
    the one watched): no request fails and every answer equals the output of the version it says answered it."""
    paths, x, outs = versions
    served = tmp_path / "v1.lgraph"
    shutil.copy(paths[0], served)
    s = Server(served, watch=True, poll_s=0.05)
    body = json.dumps({"args": [x.tolist()]}).encode()
    stop, answers, failures = threading.Event(), [], []

    def client() -> None:
        while not stop.is_set():
            status, data, _ = s.request("/v1/infer", body)
            if status != 200:
                failures.append((status, data))
            else:
                answers.append((data["version"], torch.tensor(data["outputs"], dtype=torch.float32)))

    clients = [threading.Thread(target=client) for _ in range(8)]
    for t in clients:
        t.start()
    try:
        for n in range(2, 7):
            time.sleep(0.3)
            if n % 2 == 0:  # replace the watched file: a temporary renamed over it
                tmp = served.with_name("next.tmp")
                shutil.copy(paths[n - 1], tmp)
                os.replace(tmp, served)
                deadline = time.monotonic() + 30
                while s.request("/health")[1]["version"] != n:
                    assert time.monotonic() < deadline, "--watch did not pick up the new file"
                    time.sleep(0.02)
            else:  # reload from another file, watched from now on
                served = tmp_path / f"v{n}.lgraph"
                shutil.copy(paths[n - 1], served)
                status, data, _ = s.request("/v1/reload", json.dumps({"path": str(served)}).encode())
                assert status == 200 and data["version"] == n
        time.sleep(0.3)
    finally:
        stop.set()
        for t in clients:
            t.join()
        s.close()
    assert not failures and len(answers) > 50
    assert {v for v, _ in answers} >= {1, 6}
    assert all(torch.equal(out, outs[v - 1]) for v, out in answers)


def _get(url: str, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_cli_serves_a_file(versions) -> None:
    """`lepton-graph serve FILE --port N` as users start it: it answers /health and /v1/infer, and stops on
    SIGTERM."""
    paths, x, outs = versions
    with serving(paths[0]) as url:
        assert _get(url + "/health")[1]["version"] == 1
        status, data = _get(url + "/v1/infer", json.dumps({"args": [x.tolist()]}).encode())
        assert status == 200 and torch.equal(torch.tensor(data["outputs"]), outs[0])


def test_worker_processes_follow_the_watched_file(versions, tmp_path: Path) -> None:
    """--workers 2: two processes answer on one port; replacing the watched file moves both to the new version
    (answers name the artifact by its content digest: version numbers count each process's own swaps); a reload
    (which would reach one of them) is refused with the reason."""
    import lepton_graph

    paths, x, outs = versions
    by_digest = {lepton_graph.load(p).digest: o for p, o in zip(paths[:2], outs[:2], strict=True)}
    served = tmp_path / "served.lgraph"
    shutil.copy(paths[0], served)
    body = json.dumps({"args": [x.tolist()]}).encode()
    with serving(served, "--workers", "2", "--watch") as url:
        status, data = _get(url + "/v1/infer", body)
        assert status == 200 and torch.equal(torch.tensor(data["outputs"]), outs[0])
        status, data = _get(url + "/v1/reload", b"{}")
        assert status == 409 and "replace the watched file" in data["error"]
        tmp = tmp_path / "next.tmp"
        shutil.copy(paths[1], tmp)
        os.replace(tmp, served)
        deadline, streak = time.monotonic() + 60, 0
        new = next(d for d, o in by_digest.items() if o is outs[1])
        while streak < 20:  # 20 answers in a row from the new file: both workers swapped (with high probability)
            assert time.monotonic() < deadline, "the workers did not all pick up the new file"
            status, data = _get(url + "/v1/infer", body)
            assert status == 200 and torch.equal(torch.tensor(data["outputs"]), by_digest[data["artifact"]])
            streak = streak + 1 if data["artifact"] == new else 0


def test_concurrent_requests_of_a_dynamic_model_run_batched(tmp_path: Path, versions) -> None:
    """--max-batch: requests that arrive together (batch sizes 1..6) run as fewer model calls on their rows
    concatenated, and each answer equals the model's output on its own rows; an artifact with a fixed batch says
    why it does not batch."""
    import lepton_graph

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)).eval()
    c = lepton_graph.compile(model, dynamic=True)
    c(torch.randn(2, 16))
    path = tmp_path / "dyn.lgraph"
    c.export(path)
    s = Server(path, max_batch=32, max_wait_ms=200)
    xs = [torch.randn(b, 16) for b in range(1, 7)]
    answers: dict[int, Any] = {}

    def post(i: int) -> None:
        answers[i] = s.infer(xs[i])

    try:
        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status, text, _ = s.request("/metrics")
        calls = float(re.search(r"lepton_batch_rows_count (\S+)", text.decode()).group(1))  # type: ignore[union-attr]
        assert s.request("/v1/model")[1]["batching"].startswith("up to 32 rows")
    finally:
        s.close()
    for i, x in enumerate(xs):
        status, data = answers[i]
        assert status == 200
        with torch.no_grad():
            torch.testing.assert_close(torch.tensor(data["outputs"]), model(x), rtol=1e-5, atol=1e-6)
    assert calls < len(xs)  # some requests shared a call
    paths, *_ = versions
    fixed = Server(paths[0], max_batch=8)
    try:
        assert "fixed first dim" in fixed.request("/v1/model")[1]["batching"]
    finally:
        fixed.close()
