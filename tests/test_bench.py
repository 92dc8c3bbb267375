"""The bench harness (lepton_graph.bench) on a tiny model with stand-in backends: structure, ratios, errors, JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from lepton_graph.bench import Settings, compare, render_markdown, run_bench
from lepton_graph.bench.peers import Peer, flatten_outputs

FAST = Settings(rounds=2, batch_s=0.005, warmup_s=0.005, threads=1, isolate=False)


def _passthrough(model: Any, args: tuple, kwargs: dict, ctx: Any) -> Any:
    ctx.info["stand_in"] = True
    return lambda *a, **k: model(*a, **k)


def _broken(model: Any, args: tuple, kwargs: dict, ctx: Any) -> Any:
    raise RuntimeError("boom")


def _doubling(model: Any, args: tuple, kwargs: dict, ctx: Any) -> Any:
    return lambda *a, **k: 2 * model(*a, **k)


def _dies_while_timed(model: Any, args: tuple, kwargs: dict, ctx: Any) -> Any:
    calls = {"n": 0}

    def fn(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 3:
            raise ValueError("went away")
        return model(*a, **k)

    return fn


class _Reported:
    def __init__(self, model: Any):
        self.model = model

    def __call__(self, *a: Any, **k: Any) -> Any:
        return self.model(*a, **k)

    def report(self) -> Any:
        data = {
            "partitions": 1,
            "native_nodes": 2,
            "fallback_nodes": 3,
            "fallback_ops": {"aten::relu": 2},
            "kernels_per_call": 5,
            "compile_s": 0.01,
        }
        return SimpleNamespace(as_dict=lambda: data)


STAND_INS = [
    Peer("passthrough", _passthrough),
    Peer("broken", _broken),
    Peer("doubling", _doubling),
    Peer("dies", _dies_while_timed),
    Peer("lepton", lambda m, a, k, ctx: _Reported(m)),
]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("bench") / "out.json"
    out = run_bench(["mlp_tiny"], ["eager", *STAND_INS], FAST, progress=False, json_path=path, argv=["test"])
    out["_path"] = path
    return out


def _rec(result: dict[str, Any], backend: str) -> dict[str, Any]:
    return next(r for r in result["results"] if r["backend"] == backend)


def test_every_backend_gets_a_record_with_timings_and_ratios(result: dict[str, Any]) -> None:
    assert [r["backend"] for r in result["results"]] == ["eager", "passthrough", "broken", "doubling", "dies", "lepton"]
    for name in ("eager", "passthrough", "doubling", "lepton"):
        rec = _rec(result, name)
        assert rec["status"] == "ok", rec.get("error")
        assert rec["rounds"] == 2 and len(rec["times_ms"]) == 2
        assert rec["calls"] == sum(len(r) for r in rec["times_ms"]) > 0
        assert 0 < rec["median_ms"] <= rec["p90_ms"]
        assert rec["compile_s"] >= rec["first_call_s"] > 0
        assert rec["vs_eager"] == pytest.approx(_rec(result, "eager")["median_ms"] / rec["median_ms"])
        assert rec["vs_eager_paired"] > 0
    assert _rec(result, "eager")["vs_eager"] == 1.0
    assert _rec(result, "passthrough")["info"] == {"stand_in": True}


def test_errors_are_caught_per_backend(result: dict[str, Any]) -> None:
    broken = _rec(result, "broken")
    assert broken["status"] == "error" and broken["error"] == "setup: RuntimeError: boom"
    assert broken["vs_eager"] is None and "median_ms" not in broken
    dies = _rec(result, "dies")
    assert dies["status"] == "error" and "ValueError: went away" in dies["error"]


def test_accuracy_is_max_relative_error_vs_eager(result: dict[str, Any]) -> None:
    assert _rec(result, "passthrough")["accuracy"]["max_rel_err"] == 0.0
    # 2y vs y: max|2y - y| / max|y| = 1
    assert _rec(result, "doubling")["accuracy"]["max_rel_err"] == pytest.approx(1.0)
    assert _rec(result, "doubling")["warm_accuracy"]["max_rel_err"] == pytest.approx(1.0)


def test_json_has_raw_numbers_and_machine_info(result: dict[str, Any]) -> None:
    data = json.loads(result["_path"].read_text())
    meta = data["meta"]
    assert meta["torch_threads"] == 1 and meta["argv"] == ["test"]
    assert meta["machine"]["cores_available"] >= 1 and "cpu_model" in meta["machine"]
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["settings"]["rounds"] == 2
    assert len(data["results"]) == 6
    assert _rec(data, "lepton")["report"]["kernels_per_call"] == 5


def test_markdown_table_shows_ratios_errors_and_report(result: dict[str, Any]) -> None:
    text = render_markdown(result)
    assert "| model | eager | passthrough | broken | doubling | dies | lepton |" in text
    assert "error: setup: RuntimeError: boom" in text
    assert "lepton compile report" in text and "aten::relu×2" in text
    assert "x) |" in text  # a ratio cell
    assert "no CUDA lowering" not in text
    on_gpu = {**result, "results": [{**r, "device": "cuda"} for r in result["results"]]}
    assert "lepton: no CUDA lowering yet: the optimised graph ran through torch" in render_markdown(on_gpu)


def test_plot_draws_speed_vs_eager_with_round_error_bars(result: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from lepton_graph.bench.render import paired_ratios, plot

    eager = _rec(result, "eager")
    ratios = paired_ratios(_rec(result, "doubling"), eager)
    assert len(ratios) == len(eager["round_median_ms"]) and all(r > 0 for r in ratios)
    out = tmp_path / "speed.png"
    plot(result, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_compare_handles_structure_differences() -> None:
    ref = [("out.a", torch.ones(2)), ("out.b", torch.zeros(3))]
    assert compare(ref, ref)["max_rel_err"] == 0.0
    flat = [("out[0]", torch.ones(2)), ("out[1]", torch.zeros(3))]
    assert compare(flat, ref)["note"] is None  # flat lists (ORT/OpenVINO) compare by position silently
    first_only = compare([("out[0]", torch.full((2,), 1.5))], ref)
    assert first_only["max_rel_err"] == pytest.approx(0.5) and "first output only" in first_only["note"]
    assert compare([("out", torch.ones(5))], ref)["max_rel_err"] is None


def test_flatten_outputs_walks_mappings_sequences_and_cache_objects() -> None:
    class Layer:
        def __init__(self) -> None:
            self.keys, self.values, self.device = torch.ones(1), torch.zeros(1), torch.device("cpu")

    class Cache:
        def __init__(self) -> None:
            self.layers = [Layer(), Layer()]

    out = {"logits": torch.ones(2), "cache": Cache(), "extra": (torch.ones(3), None, 4)}
    paths = [p for p, _ in flatten_outputs(out)]
    assert paths == [
        "out.logits",
        "out.cache.layers[0].keys",
        "out.cache.layers[0].values",
        "out.cache.layers[1].keys",
        "out.cache.layers[1].values",
        "out.extra[0]",
    ]


def test_cli_bench_runs_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lepton_graph.cli import main

    path = tmp_path / "cli.json"
    rc = main(
        [
            "bench",
            "--models",
            "mlp_tiny",
            "--backends",
            "eager",
            "--rounds",
            "1",
            "--quick",
            "--threads",
            "1",
            "--json",
            str(path),
            "--md",
            str(tmp_path / "cli.md"),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert json.loads(path.read_text())["results"][0]["status"] == "ok"
    assert "| mlp_tiny |" in capsys.readouterr().out
    assert (tmp_path / "cli.md").read_text().startswith("## lepton-graph bench")


def test_cli_info_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    from lepton_graph.cli import main

    assert main(["info"]) == 0
    assert "torch" in capsys.readouterr().out
    assert main(["models", "--all"]) == 0
    assert "bert_tiny" in capsys.readouterr().out
    assert main(["bench", "--models", "nope", "--no-progress"]) == 2


def _crashes_the_process(model: Any, args: tuple, kwargs: dict, ctx: Any) -> Any:
    def fn(*a: Any, **k: Any) -> Any:
        os._exit(3)  # what a segfaulting native backend looks like from outside

    return fn


def test_isolated_mode_runs_each_backend_in_its_own_process() -> None:
    crash = Peer("crash", _crashes_the_process)
    settings = Settings(rounds=2, batch_s=0.005, warmup_s=0.005, threads=1)
    assert settings.isolate
    out = run_bench(["mlp_tiny"], ["eager", "lepton", crash], settings, progress=False)
    eager, lepton, crashed = (_rec(out, b) for b in ("eager", "lepton", "crash"))
    for rec in (eager, lepton):
        assert rec["status"] == "ok" and rec["isolated"] and rec["rounds"] == 2 and rec["median_ms"] > 0
        assert rec["warm_accuracy"]["max_rel_err"] <= 1e-4 and rec["model_unchanged"]
        assert "foreign_cpu_s" in rec
    assert lepton["report"]["native_nodes"] > 0 and lepton["vs_eager"] > 0
    assert crashed["status"] == "error" and "worker died" in crashed["error"]


def test_time_budget_stops_rounds_early() -> None:
    settings = Settings(
        rounds=50, batch_s=0.001, warmup_s=0.001, threads=1, max_model_s=0.0, min_rounds=2, isolate=False
    )
    out = run_bench(["mlp_tiny"], ["eager"], settings, progress=False)
    rec = out["results"][0]
    assert rec["rounds_done"] == 2 and rec["rounds"] == 2
    assert "time budget spent after 2 rounds" in render_markdown(out)


@pytest.mark.slow
def test_quantized_peers_run_and_say_how_they_quantized() -> None:
    """Each --quantize peer (lepton, ONNX Runtime, OpenVINO + NNCF, torchao) runs on a tiny model with its
    calibration or weight compression, within int8's error, and records how it quantized."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    pytest.importorskip("torchao")
    backends = [
        "eager",
        "lepton_int8s",
        "ort_int8s",
        "ov_int8s",
        "ov_int8w",
        "ov_int4w",
        "torchao_int8",
        "torchao_int8w",
    ]
    out = run_bench(["mlp_tiny"], backends, FAST, progress=False, argv=["test"])
    for backend in backends[1:]:
        rec = _rec(out, backend)
        assert rec["status"] == "ok" and rec["error"] is None, (backend, rec["error"])
        # a peer's int8 error on this 2-row MLP is its own (NNCF's default preset: ~0.25); only sanity is checked
        assert rec["accuracy"]["rel_l2"] < (0.05 if backend.startswith("lepton") else 0.5), backend
    assert "nncf.quantize" in _rec(out, "ov_int8s")["info"]["nncf"]
    assert "INT4_ASYM" in _rec(out, "ov_int4w")["info"]["nncf"]
    assert "quantize_static" in _rec(out, "ort_int8s")["info"]["ort_quant"]
    assert "Int8DynamicActivationInt8WeightConfig" in _rec(out, "torchao_int8")["info"]["torchao"]
