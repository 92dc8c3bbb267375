"""compile(): call and decorator forms, variant cache, errors, fallback, reports, torch.compile backend."""

from __future__ import annotations

import pytest
import torch

import lepton_graph as lg
from lepton_graph.config import config


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.ReLU(), torch.nn.Linear(24, 5)).eval()


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) <= 1e-4)


def test_compile_module_matches_eager():
    m = mlp()
    c = lg.compile(m)
    x = torch.randn(3, 12)
    assert close(c(x), m(x))
    d = c.report().as_dict()
    for key in ("partitions", "native_nodes", "fallback_nodes", "fallback_ops", "kernels_per_call", "compile_s"):
        assert key in d
    assert d["native_nodes"] + d["fallback_nodes"] == d["nodes"] == 2  # linear+relu fused, linear
    assert d["kernels_before_passes"] == 3 and d["kernels_after_passes"] == 2
    assert d["compile_s"] > 0 and "fallback nodes" in str(c.report())
    if d["native_nodes"] == 2:  # the C++ backend runs the fused linear+relu as one kernel
        assert d["kernels_per_call"] == 2
    torch_only = lg.compile(m, native=False)
    assert close(torch_only(x), m(x))
    d = torch_only.report().as_dict()
    assert d["native_nodes"] == 0 and d["kernels_per_call"] == 3  # torch runs the fused group op by op


def test_decorator_on_function_bare_and_with_options():
    @lg.compile
    def f(x, y):
        return torch.tanh(x) * y + 1

    @lg.compile(dynamic=True)
    def g(x):
        return x.softmax(-1) * 2

    x, y = torch.randn(4, 5), torch.randn(5)
    assert close(f(x, y), torch.tanh(x) * y + 1)
    assert f.__name__ == "f"
    for n in (2, 3, 9):
        x = torch.randn(n, 7)
        assert close(g(x), x.softmax(-1) * 2)
    assert len(g.report().variants) == 1, "dynamic=True should serve all batch sizes with one variant"


@pytest.mark.parametrize("frontend", ["export", "dynamo"])
def test_dynamic_first_call_with_batch_1_serves_every_batch_with_one_variant(frontend: str) -> None:
    # before: batch 1 first pinned the batch dim to 1 (export and Dynamo specialise size 1): two variants
    m = mlp()
    c = lg.compile(m, dynamic=True, frontend=frontend)
    for n in (1, 2, 3, 7, 64, 1):
        x = torch.randn(n, 12)
        assert close(c(x), m(x))
    assert len(c.report().variants) == 1, [v.signature for v in c.report().variants]


def test_dynamic_transformer_first_call_with_one_sequence() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=100
    )
    torch.manual_seed(0)
    m = transformers.BertModel(cfg).eval()
    c = lg.compile(m, dynamic=True)
    with torch.no_grad():
        for b, s in ((1, 6), (3, 6), (2, 11), (1, 1)):
            ids = torch.randint(0, 100, (b, s))
            assert close(c(ids).last_hidden_state, m(ids).last_hidden_state)
    assert len(c.report().variants) == 1


@pytest.mark.parametrize("frontend", ["export", "dynamo"])
def test_bad_input_prints_nothing_but_our_error(frontend: str, capfd: pytest.CaptureFixture[str]) -> None:
    # before: ~20 lines of torch's fake_tensor traceback went to stderr ahead of the InputError
    c = lg.compile(mlp(), frontend=frontend)
    for _ in range(2):  # before and after a good call compiled a variant
        with pytest.raises(lg.InputError, match="shapes cannot be multiplied"):
            c(torch.randn(3, 13))
        c(torch.randn(3, 12))
    out, err = capfd.readouterr()
    assert err == "" and out == ""


def test_printed_report_gives_each_fallback_ops_reason() -> None:
    # before: the reason was only in as_dict(); the printed report listed the op alone
    c = lg.compile(lambda x: torch.cumsum(x, 0) * 2)
    c(torch.randn(5))
    text = str(c.report())
    line = next(x for x in text.splitlines() if "aten::cumsum" in x and "x1" in x and ":" in x.split("x1")[-1])
    assert "no native kernel" in line


def test_decorator_on_module_class():
    @lg.compile
    class Net(torch.nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(width, 3)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    net = Net(6)
    assert isinstance(net, lg.CompiledModel)
    x = torch.randn(2, 6)
    assert close(net(x), torch.sigmoid(net.model.fc(x)))


def test_recompiles_on_new_shape_and_reports_why():
    m = mlp()
    c = lg.compile(m)
    for b in (1, 4, 1, 4):
        x = torch.randn(b, 12)
        assert close(c(x), m(x))
    rep = c.report()
    assert [v.reason for v in rep.variants] == ["first call", "args[0] shape [1, 12] -> [4, 12]"]


def test_cache_limit_sends_only_new_signature_to_fallback():
    m = mlp()
    c = lg.compile(m, cache_limit=2)
    xs = [torch.randn(b, 12) for b in (1, 2, 3)]
    for x in xs + xs:
        assert close(c(x), m(x))
    rep = c.report()
    assert len(rep.variants) == 2
    assert rep.overflow == ["args[0]:float32[3, 12]@cpu"]
    # the cached signatures keep their compiled variants
    assert c._cache.lookup(next(iter(c._cache.exact))) is not None


def test_wrong_argument_count_is_a_clear_error():
    c = lg.compile(mlp())
    with pytest.raises(lg.InputError, match="bad arguments"):
        c(torch.randn(2, 12), torch.randn(2, 12))


def test_wrong_rank_dtype_device_are_clear_errors():
    m = mlp()
    c = lg.compile(m, device="cpu")
    c(torch.randn(2, 12))
    # each message names the argument and what was expected
    with pytest.raises(lg.InputError, match=r"argument args\[0\]: expected a tensor of rank 2"):
        c(torch.randn(2, 3, 12))
    with pytest.raises(lg.InputError, match=r"argument args\[0\]: expected dtype torch.float32, got torch.float64"):
        c(torch.randn(2, 12, dtype=torch.float64))
    with pytest.raises(lg.InputError, match=r"argument args\[0\]: expected device cpu, got meta"):
        c(torch.randn(2, 12, device="meta"))


def test_input_the_model_rejects_names_the_problem():
    c = lg.compile(mlp())
    with pytest.raises(lg.InputError, match="rejects these inputs"):
        c(torch.randn(2, 13))


def test_unsupported_options_are_rejected():
    with pytest.raises(lg.UnsupportedError, match="frontend"):
        lg.compile(mlp(), frontend="onnx")
    with pytest.raises(lg.UnsupportedError, match="cache_limit"):
        lg.compile(mlp(), cache_limit=0)


def test_op_without_lowering_runs_through_fallback_and_is_reported():
    @lg.compile
    def f(a, b):
        return torch.special.bessel_j0(a) * b + a.cumsum(0)

    a, b = torch.randn(5, 3), torch.randn(3)
    assert close(f(a, b), torch.special.bessel_j0(a) * b + a.cumsum(0))
    rep = f.report().as_dict()
    assert rep["unregistered_ops"] == {"aten::special_bessel_j0": 1, "aten::cumsum": 1}
    assert rep["fallback_nodes"] >= 2


def test_pytree_inputs_and_outputs():
    class M(torch.nn.Module):
        def forward(self, xs, scale, extra=None):
            return {"sum": xs[0] + xs[1] * scale, "pair": (xs[0].relu(), extra["k"] * 2)}

    m = M()
    c = lg.compile(m)
    xs = (torch.randn(3), torch.randn(3))
    out, ref = c(xs, 3.0, extra={"k": torch.ones(2)}), m(xs, 3.0, extra={"k": torch.ones(2)})
    assert out.keys() == ref.keys()
    assert close(out["sum"], ref["sum"]) and close(out["pair"][1], ref["pair"][1])
    # a new Python scalar value is a new signature: compiled again, not silently reused
    assert close(c(xs, 5.0, extra={"k": torch.ones(2)})["sum"], m(xs, 5.0, extra={"k": torch.ones(2)})["sum"])
    assert len(c.report().variants) == 2


def test_torch_compile_backend_lepton():
    import torch._dynamo

    m = mlp()
    f = torch.compile(m, backend="lepton")
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert close(f(x), m(x))
    assert lg.api.DYNAMO_REPORTS[-1].nodes > 0
    torch._dynamo.reset()


def test_dynamo_frontend_handles_graph_breaks():
    def f(x):
        y = torch.relu(x) + 1
        print_count = int((y > 1.5).sum())  # data-dependent Python: a graph break
        if print_count > 2:
            return y * 2
        return y - 1

    c = lg.compile(f, frontend="dynamo")
    for x in (torch.randn(8) + 2, torch.zeros(8)):
        assert close(c(x), f(x))
    assert c.report().as_dict()["frontend"] == "dynamo"


def test_lepton_log_prints_ir_after_each_stage(capsys):
    with config.patch(log="graph,passes,partitions"):
        lg.compile(mlp())(torch.randn(2, 12))
    err = capsys.readouterr().err
    assert "[lepton:graph] captured (export)" in err and "linear(" in err
    assert "[lepton:passes] after eliminate_dead_code" in err
    assert "[lepton:partitions]" in err and "partitions" in err


def test_lepton_profile_times_each_native_kernel():
    from lepton_graph.runtime import profile

    m = mlp()
    x = torch.randn(2, 12)
    with config.patch(profile=True):
        c = lg.compile(m)
        y = c(x)
    assert close(y, m(x))
    profile.reset()
    for _ in range(3):
        c(x)
    rows = {k: v for k, v in profile.totals().items() if "2x12" in k}
    assert rows and all(calls == 3 and s > 0 for s, calls in rows.values())
    assert "total" in profile.table()


def test_runs_under_grad_mode_without_building_autograd_graph():
    m = mlp()
    c = lg.compile(m)
    y = c(torch.randn(2, 12))
    assert not y.requires_grad


def test_output_that_is_an_input_is_a_copy():
    @lg.compile
    def f(x):
        return x.clone(), x * 2

    x = torch.randn(4)
    a, b = f(x)
    assert torch.equal(a, x) and a.data_ptr() != x.data_ptr()
    assert torch.equal(b, x * 2)


def test_a_compiler_failure_runs_that_signature_through_torch_and_says_so(monkeypatch):
    import lepton_graph.api as api

    def broken(*a, **k):
        raise RuntimeError("simulated lowering bug")

    monkeypatch.setattr(api, "compile_captured", broken)
    m = mlp()
    c = lg.compile(m)
    x = torch.randn(2, 12)
    with pytest.warns(lg.CompileFailedWarning, match="simulated lowering bug"):
        assert close(c(x), m(x))
    d = c.report().as_dict()
    assert d["compile_error"] == "RuntimeError: simulated lowering bug"
    assert "COMPILE FAILED" in str(c.report())
    assert close(c(x), m(x))  # cached: no second attempt, no second warning


def test_dynamic_variant_that_baked_in_a_size_is_replaced_not_a_crash():
    """torch.export keeps a size-1 batch symbolic yet bakes 1 into some ops (and a 1x1 feature map into the
    last stage): where the dynamic variant fails on other sizes, those sizes get a variant of their own, with
    eager's answer, and the report says why."""
    from lepton_graph import zoo

    model, (args, _) = zoo.build("resnet_tiny")
    c = lg.compile(model, dynamic=True)
    c(*args)
    gen = torch.Generator().manual_seed(0)
    for shape in ((1, 3, 40, 40), (2, 3, 40, 40), (3, 3, 44, 36), (1, 3, 17, 23)):
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            ref = model(x)
        torch.testing.assert_close(c(x), ref, atol=1e-4, rtol=1e-4)
    reasons = [v.reason for v in c.report().variants]
    assert reasons[0] == "first call" and any("does not hold here" in r for r in reasons[1:])
    assert len(reasons) <= 4
