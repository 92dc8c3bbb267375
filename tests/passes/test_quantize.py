"""compile(quantize=...): the quantize_layers pass, its configuration, the report, and the end-to-end error."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import lepton_graph
from lepton_graph import QuantConfig, UnsupportedError
from lepton_graph.ir import Op, interpret
from lepton_graph.ir.defs.quant import qlinear, quantize_weight_per_channel
from lepton_graph.ir.metrics import output_error
from lepton_graph.passes import PassOptions
from lepton_graph.passes.quantize import quantize_layers


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(48, 96)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(96, 96)
        self.head = nn.Linear(96, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(x))
        return self.head(torch.relu(self.fc2(h)) + h)


def _net() -> tuple[Net, torch.Tensor]:
    torch.manual_seed(0)
    return Net().eval(), torch.randn(6, 48)


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_int8_dynamic_quantizes_every_linear_and_reports_it() -> None:
    model, x = _net()
    c = lepton_graph.compile(model, quantize="int8-dynamic")
    y = c(x)
    with torch.no_grad():
        ref = model(x)
    q = c.report().as_dict()["quantization"]
    assert q["scheme"] == "int8-dynamic" and q["quantized_layers"] == 3
    assert [layer["layer"] for layer in q["layers"]] == ["fc1", "fc2", "head"]
    assert all(layer["quant_bytes"] < layer["weight_bytes"] / 3 for layer in q["layers"])
    assert all(0 < layer["rel_l2"] < 0.02 for layer in q["layers"])
    err = _rel_l2(y, ref)
    assert 0 < err < 0.02
    assert q["model_error"]["rel_l2"] == pytest.approx(err, rel=1e-6)
    assert c.report().as_dict()["fallback_nodes"] == 0
    assert "quantization: int8-dynamic, 3 of 3 layers" in str(c.report())
    worst = max(q["layers"], key=lambda layer: layer["rel_l2"])
    assert q["worst_layer"] == {"layer": worst["layer"], "rel_l2": worst["rel_l2"]}
    assert f"largest own error: {worst['layer']}" in str(c.report())


def test_native_kernels_equal_the_quantized_reference() -> None:
    model, x = _net()
    native = lepton_graph.compile(model, quantize="int8-dynamic")(x)
    torch_only = lepton_graph.compile(model, quantize="int8-dynamic", native=False)(x)
    # same integer sums; only the GELU approximation and summation order of the epilogue differ
    torch.testing.assert_close(native, torch_only, atol=1e-5, rtol=1e-5)
    fp32 = lepton_graph.compile(model)(x)
    assert not torch.allclose(native, fp32, atol=1e-5)  # quantization really happened


def test_exclude_and_per_layer_overrides_keep_layers_in_fp32() -> None:
    model, x = _net()
    cfg = QuantConfig("int8-dynamic", exclude=("head",), layers={"fc2": "fp32"})
    c = lepton_graph.compile(model, quantize=cfg)
    c(x)
    layers = {layer["layer"]: layer for layer in c.report().as_dict()["quantization"]["layers"]}
    assert layers["fc1"]["scheme"] == "int8-dynamic"
    assert layers["fc2"]["scheme"] == "fp32" and layers["fc2"]["why"] == "layers['fc2']"
    assert layers["head"]["scheme"] == "fp32" and layers["head"]["why"] == "excluded by 'head'"
    assert layers["head"]["quant_bytes"] == layers["head"]["weight_bytes"] == 96 * 10 * 4


def test_float_layers_take_bf16_with_precision_bf16() -> None:
    model, x = _net()
    c = lepton_graph.compile(model, quantize=QuantConfig("int8-dynamic", exclude=("head",)), precision="bf16")
    with torch.no_grad():
        assert _rel_l2(c(x), model(x)) < 0.03
    assert c.report().as_dict()["quantization"]["quantized_layers"] == 2


def test_pass_rewrites_linears_to_qlinear_with_int8_constants() -> None:
    from lepton_graph.frontend.export import capture_export

    model, x = _net()
    cap = capture_export(model, (x,), {}, [x])
    graph = cap.graph
    with torch.no_grad():
        before = interpret(graph, [x])
    res = quantize_layers(graph, PassOptions(quantize=QuantConfig(), example_inputs=[x]))
    assert res.changed and res.stats == {"quantized": 3, "layers": 3}
    assert Op.LINEAR not in {n.op for n in graph.nodes}
    q = [n for n in graph.nodes if n.op is Op.QLINEAR]
    assert len(q) == 3 and all(graph.constant(n.inputs[1]).dtype == torch.int8 for n in q)
    with torch.no_grad():
        after = interpret(graph, [x])
    assert 0 < output_error(before, after)["rel_l2"] < 0.02
    again = quantize_layers(graph, PassOptions(quantize=QuantConfig()))
    assert not again.changed  # idempotent: nothing left to quantize


def test_without_quantize_the_pass_does_nothing() -> None:
    model, x = _net()
    c = lepton_graph.compile(model)
    c(x)
    assert c.report().as_dict()["quantization"] is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("int7", "known schemes: int8-dynamic"),
        (lambda: QuantConfig("int4-weight", group=0), "int4-weight needs a group size that is a positive multiple"),
        (3, "quantize must be a scheme name"),
    ],
)
def test_bad_configurations_are_refused_clearly(spec: object, message: str) -> None:
    with pytest.raises((UnsupportedError, ValueError), match=message):
        lepton_graph.compile(nn.Linear(2, 2), quantize=spec() if callable(spec) else spec)


def test_bad_per_layer_scheme_names_the_layer() -> None:
    with pytest.raises(ValueError, match=r"layers\['fc1'\] is 'int3'"):
        QuantConfig("int8-dynamic", layers={"fc1": "int3"})


def test_dynamic_shapes_and_torch_compile_backend() -> None:
    model, x = _net()
    c = lepton_graph.compile(model, quantize="int8-dynamic", dynamic=True)
    for rows in (3, 11):
        xi = torch.randn(rows, 48)
        with torch.no_grad():
            ref = model(xi)
        assert _rel_l2(c(xi), ref) < 0.02
    assert len(c.report().variants) == 1
    torch._dynamo.reset()
    tc = torch.compile(model, backend="lepton", options={"quantize": "int8-dynamic"})
    with torch.no_grad():
        y = tc(x)
        ref = model(x)
    assert 0 < _rel_l2(y, ref) < 0.02
    torch._dynamo.reset()
    with pytest.raises(Exception, match="unknown lepton backend options"):
        torch.compile(model, backend="lepton", options={"quantise": "int8-dynamic"})(x)
    torch._dynamo.reset()


def test_qlinear_reference_is_close_to_linear() -> None:
    gen = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(5, 64, generator=gen), torch.randn(32, 64, generator=gen), torch.randn(32, generator=gen)
    wq, scale = quantize_weight_per_channel(w)
    assert torch.equal(wq.float().abs().amax(1), torch.full((32,), 127.0))  # symmetric, full int8 range
    y = qlinear(x, wq, scale, b, act="dynamic")
    assert _rel_l2(y, torch.nn.functional.linear(x, w, b)) < 0.01


def test_layers_kept_float_for_their_size_are_neither_quantized_nor_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    # before: min_weight_elements was applied after the per-layer measurement, so a layer kept in fp32 for its size
    # was still quantized and run on the examples to measure an error nobody used
    import lepton_graph.passes.quantize as quantize

    shapes: list[tuple[int, ...]] = []
    real = quantize.fake_quant_layer

    def counting(w: torch.Tensor, *args: Any) -> Any:
        shapes.append(tuple(w.shape))
        return real(w, *args)

    monkeypatch.setattr(quantize, "fake_quant_layer", counting)
    model, x = _net()
    c = lepton_graph.compile(model, quantize=QuantConfig("int8-dynamic", min_weight_elements=1000))
    with torch.no_grad():
        c(x)
    layers = {layer["layer"]: layer for layer in c.report().as_dict()["quantization"]["layers"]}
    small = [layer for layer in layers.values() if layer["scheme"] == "fp32"]
    assert small and all("rel_l2" not in layer and "min_weight_elements" in layer["why"] for layer in small)
    assert all("rel_l2" in layer for layer in layers.values() if layer["scheme"] != "fp32")
    assert (10, 96) not in shapes and (96, 96) in shapes  # the 960-element head was never quantized


# -- int8-static: calibration, observers, the static kernel


def _calibration(n: int = 6, rows: int = 6) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    return [torch.randn(rows, 48, generator=gen) for _ in range(n)]


@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse"])
def test_int8_static_runs_the_calibrated_reference_natively(observer: str) -> None:
    model, x = _net()
    cal = _calibration()
    cfg = QuantConfig("int8-static", observer=observer)
    c = lepton_graph.compile(model, quantize=cfg, calibration=cal)
    y = c(x)
    q = c.report().as_dict()["quantization"]
    assert q["scheme"] == "int8-static" and q["quantized_layers"] == 3
    assert all(layer["scheme"] == "int8-static" and layer["act_scale"] > 0 for layer in q["layers"])
    assert c.report().as_dict()["fallback_nodes"] == 0
    # the native static GEMM computes the IR's static semantics (ir/defs/quant.py: qlinear_static)
    ref = lepton_graph.compile(model, quantize=cfg, calibration=cal, native=False)(x)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    dynamic = lepton_graph.compile(model, quantize="int8-dynamic")(x)
    assert not torch.allclose(y, dynamic, atol=1e-4)  # one calibrated scale, not one per row
    with torch.no_grad():  # one scale per tensor on a random-weight net: 3% here, against int8-dynamic's 1%
        assert 0 < _rel_l2(y, model(x)) < 0.05


def test_minmax_calibration_fixes_the_observed_range() -> None:
    from lepton_graph.ir.defs.quant import static_qparams

    model, x = _net()
    cal = _calibration()
    c = lepton_graph.compile(model, quantize="int8-static", calibration=cal)
    c(x)
    layers = {layer["layer"]: layer for layer in c.report().as_dict()["quantization"]["layers"]}
    lo, hi = min(float(t.min()) for t in cal), max(float(t.max()) for t in cal)
    assert (layers["fc1"]["act_scale"], layers["fc1"]["act_zero_point"]) == static_qparams(lo, hi)
    # fc2's input is GELU's output: its lower end is GELU's minimum (about -0.17), its zero point just above 0
    assert 0 < layers["fc2"]["act_zero_point"] < 20


def test_percentile_and_mse_ranges_clip_heavy_tails() -> None:
    from lepton_graph.calibration import Observer
    from lepton_graph.ir.defs.quant import quantize_u8_static, static_qparams

    gen = torch.Generator().manual_seed(0)
    data = [torch.randn(64, 100, generator=gen) ** 3 for _ in range(4)]  # heavy tails: clipping them pays

    def observed(kind: str, percentile: float = 99.9) -> tuple[float, float]:
        obs = Observer(kind, percentile, seed=0)
        for t in data:
            obs.observe(t)
        return obs.range()

    def sq_error(r: tuple[float, float]) -> float:
        scale, zero = static_qparams(*r)
        x = torch.cat([t.reshape(-1) for t in data])
        return float((((quantize_u8_static(x, scale, zero).float() - zero) * scale - x) ** 2).mean())

    lo, hi = observed("minmax")
    assert (lo, hi) == (min(float(t.min()) for t in data), max(float(t.max()) for t in data))
    for kind in ("percentile", "mse"):
        a, b = observed(kind)
        assert lo < a < 0 < b < hi, (kind, (a, b), (lo, hi))
    assert sq_error(observed("mse")) < sq_error((lo, hi))
    assert observed("percentile", 100.0) == (lo, hi)


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(48, 32)
        self.w = nn.Parameter(torch.randn(16, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(torch.relu(self.fc(x)), self.w)


def test_calibration_on_the_compiled_graph_covers_functional_layers() -> None:
    """Calibration runs on the graph, so a linear that is no nn.Linear is calibrated too; in eager (here: forced by
    a calibration example of another shape) it is not called as a module and takes int8-dynamic, with the reason."""
    torch.manual_seed(0)
    model = _Functional().eval()
    x = torch.randn(6, 48)
    for cal, on in ((_calibration(), "compiled fp32 graph"), ([*_calibration(), torch.randn(3, 48)], "eager")):
        c = lepton_graph.compile(model, quantize="int8-static", calibration=cal)
        with torch.no_grad():
            assert _rel_l2(c(x), model(x)) < 0.05
        q = c.report().as_dict()["quantization"]
        layers = {layer["layer"]: layer for layer in q["layers"]}
        assert q["calibration"]["on"] == on and q["calibration"]["examples"] == len(cal)
        assert layers["fc"]["scheme"] == "int8-static"
        if on == "eager":
            assert "example 6 does not fit" in q["calibration"]["why"]
            assert layers["w"]["scheme"] == "int8-dynamic"
            assert "no calibrated range for 'w'" in layers["w"]["why"]
        else:
            assert layers["w"]["scheme"] == "int8-static"


@pytest.mark.parametrize("observer", ["minmax", "percentile"])
def test_compiled_calibration_matches_eager_calibration(observer: str) -> None:
    """The same ranges as forward hooks on the eager model (min-max to fp32 rounding of our kernels; the
    percentile draws its own sample, so within a few per cent), with the model's forward never run per example."""
    from lepton_graph.calibration import calibrate

    model, x = _net()
    cal = _calibration(8, 6)
    cfg = QuantConfig("int8-static", observer=observer)
    calls = []
    model.fc1.register_forward_pre_hook(lambda *_: calls.append(1))
    c = lepton_graph.compile(model, quantize=cfg, calibration=cal)
    c(x)
    assert len(calls) < len(cal)  # capture traces the forward; calibration never runs it
    assert c.report().as_dict()["quantization"]["calibration"]["on"] == "compiled fp32 graph"
    eager = calibrate(model, cal, cfg).ranges
    got = c.options.act_ranges
    assert got is not None and set(got) == set(eager) == {"fc1", "fc2", "head"}
    for name, (lo, hi) in eager.items():
        tol = 1e-5 if observer == "minmax" else 0.05
        assert got[name][0] == pytest.approx(lo, rel=tol, abs=1e-6) and got[name][1] == pytest.approx(hi, rel=tol)


def test_compiled_calibration_of_a_cnn_and_its_dynamic_sizes() -> None:
    """Convs calibrate on the folded graph (BatchNorm folded into the conv, the layer still named by the conv);
    with dynamic=True, examples of other sizes run compiled too."""
    from lepton_graph.calibration import calibrate

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 8, 3, stride=2),
        nn.Flatten(),
        nn.Linear(8 * 7 * 7, 10),
    ).eval()
    gen = torch.Generator().manual_seed(2)
    cal = [torch.randn(b, 3, 16, 16, generator=gen) for b in (1, 2, 3)]
    cfg = QuantConfig("int8-static", layers={"0": "int8-static", "3": "int8-static"})
    c = lepton_graph.compile(model, quantize=cfg, calibration=cal, dynamic=True)
    x = torch.randn(2, 3, 16, 16, generator=gen)
    with torch.no_grad():
        assert _rel_l2(c(x), model(x)) < 0.05
    assert c.report().as_dict()["quantization"]["calibration"]["on"] == "compiled fp32 graph"
    eager = calibrate(model, cal, cfg).ranges
    got = c.options.act_ranges
    assert got is not None and set(got) == set(eager)
    for name, (lo, hi) in eager.items():
        assert got[name][0] == pytest.approx(lo, rel=1e-5, abs=1e-6) and got[name][1] == pytest.approx(hi, rel=1e-5)


def test_int8_static_serves_other_shapes_with_dynamic_true() -> None:
    model, _ = _net()
    cal = [(t,) for t in _calibration(16, 16)]
    c = lepton_graph.compile(model, quantize="int8-static", calibration=cal, dynamic=True)
    gen = torch.Generator().manual_seed(3)
    for rows in (1, 9):
        xi = torch.randn(rows, 48, generator=gen)
        with torch.no_grad():
            assert _rel_l2(c(xi), model(xi)) < 0.05
    assert len(c.report().variants) == 1


def test_int8_static_configuration_errors() -> None:
    model, x = _net()
    with pytest.raises(UnsupportedError, match="needs calibration="):
        lepton_graph.compile(model, quantize="int8-static")
    with pytest.raises(UnsupportedError, match="only used by quantize='int8-static'"):
        lepton_graph.compile(model, quantize="int8-dynamic", calibration=[x])
    with pytest.raises(UnsupportedError, match="only used by"):
        lepton_graph.compile(model, calibration=[x])
    with pytest.raises(lepton_graph.InputError, match="calibration is empty"):
        lepton_graph.compile(model, quantize="int8-static", calibration=[])
    with pytest.raises(lepton_graph.InputError, match="calibration example 1 is a list"):
        lepton_graph.compile(model, quantize="int8-static", calibration=[x, [x]])
    # calibration runs when the first call compiles: a misfit example falls back to eager, which names it
    bad = lepton_graph.compile(model, quantize="int8-static", calibration=[torch.randn(2, 5)])
    with pytest.raises(lepton_graph.InputError, match="calibration example 0: the model rejects it"):
        bad(x)
    fn = lepton_graph.compile(lambda t: t * 2, quantize="int8-static", calibration=[x])
    assert torch.equal(fn(x), x * 2)  # nothing to calibrate on the graph
    with pytest.raises(UnsupportedError, match="compile an nn.Module"):
        lepton_graph.compile(lambda t: t * 2, quantize="int8-static", calibration=[x[:2]])(x)
    with pytest.raises(ValueError, match="known observers"):
        QuantConfig("int8-static", observer="kl")
    torch._dynamo.reset()
    with pytest.raises(Exception, match="int8-static needs calibration data"):
        torch.compile(model, backend="lepton", options={"quantize": "int8-static"})(x)
    torch._dynamo.reset()


def test_per_layer_static_override_calibrates_only_that_layer() -> None:
    model, x = _net()
    cfg = QuantConfig("int8-dynamic", layers={"fc2": "int8-static"})
    c = lepton_graph.compile(model, quantize=cfg, calibration=_calibration())
    c(x)
    schemes = {layer["layer"]: layer["scheme"] for layer in c.report().as_dict()["quantization"]["layers"]}
    assert schemes == {"fc1": "int8-dynamic", "fc2": "int8-static", "head": "int8-dynamic"}


@pytest.mark.parametrize(
    ("scheme", "group", "budget", "ratio"),
    [("int8-weight", None, 0.01, 0.3), ("int8-weight", 32, 0.01, 0.32), ("int4-weight", None, 0.12, 0.16),
     ("int4-weight", 32, 0.1, 0.18)],
)  # fmt: skip
def test_weight_only_schemes_run_natively_and_report_their_bytes(scheme, group, budget, ratio) -> None:
    model, x = _net()
    cfg = QuantConfig(scheme, group=group)
    c = lepton_graph.compile(model, quantize=cfg)
    y = c(x)
    with torch.no_grad():
        ref = model(x)
    rep = c.report().as_dict()
    q = rep["quantization"]
    assert q["quantized_layers"] == 3 and rep["fallback_nodes"] == 0
    assert all(layer["quant_bytes"] < layer["weight_bytes"] * ratio for layer in q["layers"])
    want_group = group if group is not None else (128 if scheme == "int4-weight" else 0)
    assert all(layer["group"] == want_group for layer in q["layers"])
    assert 0 < _rel_l2(y, ref) < budget
    # the native kernels compute the registry's reference (the dequantized weight) to fp32 rounding
    torch_only = lepton_graph.compile(model, quantize=cfg, native=False)(x)
    torch.testing.assert_close(y, torch_only, atol=2e-5, rtol=1e-4)


def test_weight_only_layers_follow_the_per_layer_choice() -> None:
    model, x = _net()
    cfg = QuantConfig("int4-weight", layers={"head": "int8-weight", "fc2": "int8-dynamic"})
    c = lepton_graph.compile(model, quantize=cfg)
    c(x)
    layers = {layer["layer"]: layer["scheme"] for layer in c.report().as_dict()["quantization"]["layers"]}
    assert layers == {"fc1": "int4-weight", "fc2": "int8-dynamic", "head": "int8-weight"}
    assert c.report().as_dict()["fallback_nodes"] == 0


def test_weight_only_gemv_streams_fewer_bytes_at_batch_1() -> None:
    """The few-row path at batch 1 with dynamic=True (the decode shape weight-only quantization is for)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.SiLU(), nn.Linear(512, 256)).eval()
    c = lepton_graph.compile(model, quantize="int4-weight", dynamic=True)
    for rows in (1, 2, 7):
        x = torch.randn(rows, 256)
        with torch.no_grad():
            assert _rel_l2(c(x), model(x)) < 0.15


def test_accuracy_budget_keeps_the_most_sensitive_layers_float() -> None:
    model, x = _net()
    with torch.no_grad():
        ref = model(x)
    full = lepton_graph.compile(model, quantize="int4-weight")
    err_full = _rel_l2(full(x), ref)
    bound = err_full * 0.7
    c = lepton_graph.compile(model, quantize="int4-weight", accuracy_budget={"rel_l2": bound})
    err = _rel_l2(c(x), ref)
    q = c.report().as_dict()["quantization"]
    b = q["budget"]
    assert b["met"] and b["metric"] == "rel_l2" and b["bound"] == bound
    assert 1 <= len(b["kept_float"]) < 3 and b["forwards"] <= 4
    assert err <= bound * 1.01 and err == pytest.approx(b["achieved"], rel=1e-3)  # native = the simulated error
    kept = {layer["layer"]: layer for layer in q["layers"] if layer["scheme"] == "fp32"}
    assert set(kept) == set(b["kept_float"])
    assert all(layer["why"].startswith("accuracy budget") for layer in kept.values())
    # kept float: the layers whose own error was largest
    own = {layer["layer"]: layer.get("rel_l2", layer.get("rel_l2_if_quantized")) for layer in q["layers"]}
    assert min(own[n] for n in kept) >= max(v for n, v in own.items() if n not in kept)
    assert "accuracy budget rel_l2 <= " in str(c.report())


def test_accuracy_budget_with_a_user_metric_and_one_already_met() -> None:
    model, x = _net()

    def one_minus_cos(fp32: list, quant: list) -> float:
        return float(1 - torch.nn.functional.cosine_similarity(fp32[0].flatten(), quant[0].flatten(), dim=0))

    c = lepton_graph.compile(model, quantize="int8-dynamic", accuracy_budget=(one_minus_cos, 0.01))
    c(x)
    b = c.report().as_dict()["quantization"]["budget"]
    assert b["met"] and b["kept_float"] == [] and b["forwards"] == 1 and b["metric"] == "one_minus_cos"
    tight = lepton_graph.compile(model, quantize="int8-dynamic", accuracy_budget={"max_abs": 0.0})
    with torch.no_grad():
        torch.testing.assert_close(tight(x), model(x), atol=1e-5, rtol=1e-5)
    assert tight.report().as_dict()["quantization"]["quantized_layers"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accuracy_budget": {"rel_l2": 0.1}}, "accuracy_budget applies to quantization"),
        ({"quantize": "int8-dynamic", "accuracy_budget": {"cos": 0.1}}, "unknown metric 'cos'"),
        ({"quantize": "int8-dynamic", "accuracy_budget": {"rel_l2": -1}}, "finite number >= 0"),
        ({"quantize": "int8-dynamic", "accuracy_budget": 0.1}, "one-entry dict"),
    ],
)
def test_bad_accuracy_budgets_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(UnsupportedError, match=message):
        lepton_graph.compile(nn.Linear(2, 2), **kwargs)


def _outlier_net() -> tuple[nn.Module, torch.Tensor]:
    """Two layers reading one tensor whose channels 3 and 17 are 60x the rest (the outliers SmoothQuant is for)."""
    torch.manual_seed(0)

    class Outliers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.out = nn.Linear(32, 64), nn.Linear(32, 64), nn.Linear(64, 8)
            self.register_buffer("gain", torch.ones(32).index_fill_(0, torch.tensor([3, 17]), 60.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x * self.gain
            return self.out(torch.relu(self.a(x)) * self.b(x))

    return Outliers().eval(), torch.randn(16, 32)


def test_smoothquant_moves_activation_outliers_into_the_weights() -> None:
    model, x = _outlier_net()
    with torch.no_grad():
        ref = model(x)
    plain = lepton_graph.compile(model, quantize="int8-dynamic")
    smooth = lepton_graph.compile(model, quantize=QuantConfig("int8-dynamic", smooth_alpha=0.5))
    e_plain, e_smooth = _rel_l2(plain(x), ref), _rel_l2(smooth(x), ref)
    assert e_smooth < 0.7 * e_plain, (e_smooth, e_plain)
    layers = {layer["layer"]: layer for layer in smooth.report().as_dict()["quantization"]["layers"]}
    assert set(layers) == {"a+b", "out"}  # one GEMM for the two layers reading x: one s
    assert layers["a+b"].get("smoothed") and "; smoothed (own rel_l2" in layers["a+b"]["why"]
    # kept only where it lowers the layer's own error: "out" reads no outliers
    assert not layers["out"].get("smoothed") and "not smoothed (own rel_l2" in layers["out"]["why"]
    assert smooth.report().as_dict()["fallback_nodes"] == 0
    # the reference path computes the same smoothed model
    torch_only = lepton_graph.compile(model, quantize=QuantConfig("int8-dynamic", smooth_alpha=0.5), native=False)
    torch.testing.assert_close(smooth(x), torch_only(x), atol=1e-4, rtol=1e-4)


def test_smoothquant_with_int8_static_is_kept_only_where_it_helps() -> None:
    model, x = _outlier_net()
    with torch.no_grad():
        ref = model(x)
    calib = [torch.randn(16, 32) for _ in range(4)]
    plain = lepton_graph.compile(model, quantize="int8-static", calibration=calib)
    cfg = QuantConfig("int8-static", smooth_alpha=0.5)
    smooth = lepton_graph.compile(model, quantize=cfg, calibration=calib)
    e_plain, e_smooth = _rel_l2(plain(x), ref), _rel_l2(smooth(x), ref)
    layers = smooth.report().as_dict()["quantization"]["layers"]
    assert all(layer["scheme"] == "int8-static" and "smoothed (own rel_l2" in layer["why"] for layer in layers)
    # each layer's own error decides: never worse than without (here a per-tensor range gains nothing from it)
    assert e_smooth <= e_plain * 1.001, (e_smooth, e_plain)


def test_smooth_alpha_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"smooth_alpha must be in \(0, 1\)"):
        QuantConfig("int8-dynamic", smooth_alpha=1.5)


def test_activation_aware_scaling_for_weight_only_layers() -> None:
    model, x = _outlier_net()
    with torch.no_grad():
        ref = model(x)
    plain = lepton_graph.compile(model, quantize="int4-weight")
    scaled = lepton_graph.compile(model, quantize=QuantConfig("int4-weight", smooth_alpha=0.5))
    e_plain, e_scaled = _rel_l2(plain(x), ref), _rel_l2(scaled(x), ref)
    rep = scaled.report().as_dict()
    smoothed = [layer for layer in rep["quantization"]["layers"] if layer.get("smoothed")]
    assert rep["fallback_nodes"] == 0 and smoothed
    for layer in smoothed:  # kept because the layer's own error went down ("own rel_l2 A -> B")
        before, after = (float(v) for v in layer["why"].split("own rel_l2 ")[1].rstrip(")").split(" -> "))
        assert after < before and layer["rel_l2"] == pytest.approx(after, rel=1e-2)
    # the model's error moves with the layers' (on this toy both ways are within 10%; MiniLM gains 14%)
    assert e_scaled < 1.1 * e_plain, (e_scaled, e_plain)
    torch_only = lepton_graph.compile(model, quantize=QuantConfig("int4-weight", smooth_alpha=0.5), native=False)
    torch.testing.assert_close(scaled(x), torch_only(x), atol=1e-4, rtol=1e-4)


def test_accuracy_budget_on_an_eval_set() -> None:
    """eval=: the budget holds on every eval input that fits the compiled call (the worst counts), not only on the
    call's own inputs; inputs of another shape are skipped (static) or used (dynamic=True)."""
    model, x = _net()
    gen = torch.Generator().manual_seed(9)
    evals = [torch.randn(6, 48, generator=gen) * 3 for _ in range(3)] + [torch.randn(2, 48, generator=gen)]
    # all int4: rel. L2 0.088 on the call's own input, 0.091 on the worst eval input: the eval set tips the budget
    bound = 0.089
    own = lepton_graph.compile(model, quantize="int4-weight", accuracy_budget={"rel_l2": bound})
    own(x)
    assert own.report().as_dict()["quantization"]["budget"]["kept_float"] == []
    c = lepton_graph.compile(model, quantize="int4-weight", accuracy_budget={"rel_l2": bound}, eval=evals)
    c(x)
    b = c.report().as_dict()["quantization"]["budget"]
    assert b["inputs"] == "eval" and b["input_sets"] == 3 and b["met"]  # the (2, 48) input does not fit
    assert len(b["kept_float"]) == 1
    with torch.no_grad():
        worst = max(_rel_l2(c(e), model(e)) for e in evals[:3])
    assert worst <= bound * 1.01 and worst == pytest.approx(b["achieved"], rel=1e-3)
    d = lepton_graph.compile(model, quantize="int4-weight", accuracy_budget={"rel_l2": bound}, eval=evals, dynamic=True)
    d(x)
    assert d.report().as_dict()["quantization"]["budget"]["input_sets"] == 4
    with pytest.raises(UnsupportedError, match="eval= is the accuracy budget's input set"):
        lepton_graph.compile(model, quantize="int4-weight", eval=evals)
    e = lepton_graph.compile(model, quantize="int4-weight", accuracy_budget={"rel_l2": bound}, eval=[evals[3]])
    with pytest.raises(lepton_graph.InputError, match="no eval= input fits the call being compiled"):
        e(x)


@pytest.mark.parametrize("scheme", ["int8-weight", "int4-weight"])
def test_weight_only_through_the_torch_compile_backend(scheme: str) -> None:
    model, x = _net()
    torch._dynamo.reset()
    tc = torch.compile(model, backend="lepton", options={"quantize": scheme})
    with torch.no_grad():
        y, ref = tc(x), model(x)
    assert 0 < _rel_l2(y, ref) < (0.01 if scheme == "int8-weight" else 0.15)
    torch._dynamo.reset()


class ConvNet(nn.Module):
    """conv + BatchNorm + ReLU, a strided conv, a depthwise conv (no int8 kernel), a 1x1 conv with a residual, and
    a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 24, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24)
        self.pw = nn.Conv2d(24, 24, 1)
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.conv2(h))
        h = torch.relu(self.pw(self.dw(h)) + h)
        return self.head(h.mean((2, 3)))


def _conv_net() -> tuple[ConvNet, torch.Tensor, list[tuple[torch.Tensor]]]:
    torch.manual_seed(0)
    model = ConvNet().eval()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    gen = torch.Generator().manual_seed(1)
    return model, torch.randn(2, 3, 15, 13), [(torch.randn(2, 3, 15, 13, generator=gen),) for _ in range(4)]


@pytest.mark.parametrize("scheme", ["int8-dynamic", "int8-static"])
def test_convs_take_int8_natively_and_equal_the_reference(scheme: str) -> None:
    model, x, cal = _conv_net()
    kw: dict[str, Any] = {"calibration": cal} if scheme == "int8-static" else {}
    c = lepton_graph.compile(model, quantize=scheme, **kw)
    y = c(x)
    rep = c.report().as_dict()
    layers = {layer["layer"]: layer for layer in rep["quantization"]["layers"]}
    assert {name: layer["scheme"] for name, layer in layers.items()} == {
        "conv1": scheme,  # BatchNorm folded in, still named by the conv
        "conv2": scheme,
        "dw": "fp32",
        "pw": scheme,
        "head": scheme,
    }
    assert "grouped conv" in layers["dw"]["why"]
    assert layers["conv2"]["quant_bytes"] < layers["conv2"]["weight_bytes"] / 3
    assert rep["fallback_nodes"] == 0
    # the native int8 conv (with its fused bias / residual / ReLU) computes the IR's QCONV2D semantics
    ref = lepton_graph.compile(model, quantize=scheme, native=False, **kw)(x)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert 0 < _rel_l2(y, model(x)) < 0.03


def test_weight_only_schemes_keep_convs_float() -> None:
    model, x, _ = _conv_net()
    c = lepton_graph.compile(model, quantize="int8-weight")
    c(x)
    layers = {layer["layer"]: layer for layer in c.report().as_dict()["quantization"]["layers"]}
    assert layers["head"]["scheme"] == "int8-weight"
    assert layers["conv2"]["scheme"] == "fp32" and "linear layers only" in layers["conv2"]["why"]


def test_int8_convs_serve_other_shapes_with_dynamic_true() -> None:
    model, _, cal = _conv_net()
    c = lepton_graph.compile(model, quantize="int8-static", calibration=cal, dynamic=True)
    ref = lepton_graph.compile(model, quantize="int8-static", calibration=cal, dynamic=True, native=False)
    gen = torch.Generator().manual_seed(3)
    for shape in ((1, 3, 9, 9), (3, 3, 16, 11)):
        xi = torch.randn(shape, generator=gen)
        torch.testing.assert_close(c(xi), ref(xi), atol=1e-5, rtol=1e-5)
    assert len(c.report().variants) == 1


def test_default_scheme_keeps_convs_float_where_fp32_winograd_is_faster() -> None:
    """Without AVX512-VNNI, 3x3 stride-1 convs with >= 16 channels run faster as fp32 Winograd F(4x4) than as int8:
    the default scheme keeps them float and says why; naming the layer forces int8. With VNNI every conv is int8."""
    from lepton_graph.backends.cpu import native

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2)).eval()
    x = torch.randn(1, 16, 20, 20)
    c = lepton_graph.compile(model, quantize="int8-dynamic")
    c(x)
    layers = {layer["layer"]: layer for layer in c.report().as_dict()["quantization"]["layers"]}
    assert layers["2"]["scheme"] == "int8-dynamic"  # strided: no Winograd
    if native.available() and native.kernel_variants()["gemm_int8"] != "avx512vnni":
        assert layers["0"]["scheme"] == "fp32" and "Winograd" in layers["0"]["why"]
    else:
        assert layers["0"]["scheme"] == "int8-dynamic"
    forced = lepton_graph.compile(model, quantize=QuantConfig("int8-dynamic", layers={"0": "int8-dynamic"}))
    forced(x)
    layers = {layer["layer"]: layer for layer in forced.report().as_dict()["quantization"]["layers"]}
    assert layers["0"]["scheme"] == "int8-dynamic" and layers["0"]["why"] == "layers['0']"


def test_smoothing_groups_only_layers_reading_the_same_tensor() -> None:
    """Calibration gives layers that read one tensor (Q/K/V) one set of SmoothQuant factors, and layers reading
    different tensors their own, even when a freed input's memory is reused by the next layer's input."""
    from lepton_graph.calibration import calibrate

    class Temps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 64)
            self.c1, self.c2 = nn.Linear(64, 64), nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x * 2.0)  # x * 2.0 is freed when a returns; h * 3.0 may take its address
            h = self.b(h * 3.0)
            t = torch.relu(h)
            return self.c1(t) + self.c2(t)

    torch.manual_seed(0)
    model = Temps().eval()
    gen = torch.Generator().manual_seed(1)
    cal = [(torch.randn(8, 64, generator=gen) * torch.linspace(0.1, 10, 64),) for _ in range(3)]
    cfg = QuantConfig("int8-static", smooth_alpha=0.5)
    res = calibrate(model, cal, cfg)
    s = {name: res.smooth[name][0] for name in ("a", "b", "c1", "c2")}
    assert s["c1"] is s["c2"]  # one tensor, one s
    assert not torch.equal(s["a"], s["b"])
    c = lepton_graph.compile(model, quantize=cfg, calibration=cal)  # on the graph: one value, one s
    c(*cal[0])
    assert c.report().as_dict()["quantization"]["calibration"]["on"] == "compiled fp32 graph"
    got = c.options.act_smooth
    assert got is not None and got["c1"][0] is got["c2"][0]
    assert not torch.equal(got["a"][0], got["b"][0])
    for name in s:  # the same factors as in eager, to fp32 rounding
        torch.testing.assert_close(got[name][0], s[name], rtol=1e-4, atol=0)
        assert got[name][1] == pytest.approx(res.smooth[name][1], rel=1e-4, abs=1e-6)


def test_calibration_examples_with_positional_and_keyword_arguments() -> None:
    """lepton_graph.Inputs(*args, **kwargs) is one call with both kinds of argument (a tuple or a dict says one
    kind only): calibrating with Inputs(x, shift=s) is calibrating with the positional call (x, s), bit for bit, and
    the keyword reaches the model (without it the ranges, and so the outputs, differ)."""

    class Shifted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(48, 16)

        def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
            return self.lin(x if shift is None else x + shift)

    torch.manual_seed(0)
    model = Shifted().eval()
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(8, 48, generator=gen) for _ in range(4)]
    shift = torch.full((8, 48), 3.0)
    outs = []
    for cal in ([lepton_graph.Inputs(x, shift=shift) for x in xs], [(x, shift) for x in xs], [(x,) for x in xs]):
        c = lepton_graph.compile(model, quantize="int8-static", calibration=cal)
        with torch.no_grad():
            outs.append(c(xs[0], shift))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])
    with torch.no_grad():
        assert _rel_l2(outs[0], model(xs[0], shift)) < 0.05
    assert "1 positional" in repr(lepton_graph.Inputs(xs[0], shift=shift))
