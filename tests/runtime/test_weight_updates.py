"""A compiled model follows its module's weights: training steps, in-place updates and replaced parameters are
seen on the next call (folded, merged, quantized and packed constants re-derived); freeze=True does not look.

Before the weight watch (commit 4e35687) every test here but the freeze one failed: the native path kept the
weights it packed at compile time (error 1.6 on the MLP), and a merged linear chain was stale even through torch.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lepton_graph as lg

from .calls import results_while


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


class ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8 * 6 * 6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))


def _chain() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))


CASES = {
    "mlp": (_mlp, (5, 32), {}),
    "mlp_torch_only": (_mlp, (5, 32), {"native": False}),
    "merged_chain": (_chain, (3, 16), {}),
    "merged_chain_torch_only": (_chain, (3, 16), {"native": False}),
    "conv_bn": (ConvBN, (2, 3, 6, 6), {}),
    "dynamo": (_mlp, (5, 32), {"frontend": "dynamo"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_loop_between_compiled_evaluations(case: str) -> None:
    build, shape, options = CASES[case]
    torch.manual_seed(0)
    model = build()
    x = torch.randn(shape)
    compiled = lg.compile(model, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        model.train()  # batch norm's running statistics move too
        opt.zero_grad()
        model(torch.randn(shape)).square().mean().backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            assert _rel(compiled(x), model(x)) <= 1e-4


def test_quantized_model_is_requantized_after_an_update() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 16)).eval()
    x = torch.randn(8, 256)
    compiled = lg.compile(model, quantize="int8-dynamic")
    with torch.no_grad():
        compiled(x)
        model[0].weight.mul_(-3.0)
        model[2].weight.add_(0.05)
        err = (compiled(x) - model(x)).norm() / model(x).norm()
    assert err < 0.02  # int8 per-channel weights of the NEW model (stale ones give an error of order 1)


def test_replaced_parameter_object_is_followed() -> None:
    torch.manual_seed(0)
    model, x = _mlp().eval(), torch.randn(4, 32)
    compiled = lg.compile(model)
    compiled(x)
    model[0].weight = nn.Parameter(torch.randn(64, 32))
    model[2].bias = nn.Parameter(torch.randn(8))
    with torch.no_grad():
        assert _rel(compiled(x), model(x)) <= 1e-4
    model[0].weight.data = torch.randn(64, 32)  # swaps the storage: same object, same version counter
    with torch.no_grad():
        assert _rel(compiled(x), model(x)) <= 1e-4


def test_only_what_changed_is_lowered_again() -> None:
    torch.manual_seed(0)
    model, x = (
        nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval(),
        torch.randn(2, 8),
    )
    compiled = lg.compile(model)
    compiled(x)
    graph = compiled._cache.variants[0]
    with torch.no_grad():
        model[2].weight.add_(1.0)
    seen: list[int] = []
    from lepton_graph.compiler import CompiledGraph

    original = CompiledGraph.refresh

    def counting(self: CompiledGraph, changed: dict) -> int:
        seen.append(original(self, changed))
        return seen[-1]

    CompiledGraph.refresh = counting  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            assert _rel(compiled(x), model(x)) <= 1e-4
            compiled(x)  # nothing changed since: no refresh
    finally:
        CompiledGraph.refresh = original  # type: ignore[method-assign]
    assert seen == [1], "one changed layer: exactly one node (the middle linear + relu group) lowered again"
    assert graph is compiled._cache.variants[0]  # refreshed in place, not recompiled


def test_freeze_skips_the_check_and_keeps_the_compiled_weights() -> None:
    torch.manual_seed(0)
    model, x = _mlp().eval(), torch.randn(4, 32)
    frozen = lg.compile(model, freeze=True)
    with torch.no_grad():
        before = frozen(x)
        model[0].weight.mul_(2.0)
        assert torch.equal(frozen(x), before)  # documented: a frozen model does not see updates
        assert _rel(model(x), before) > 1e-2


@pytest.mark.parametrize("frontend", ["export", "dynamo"])
def test_refresh_weights_sees_updates_that_bypass_the_version_counter(frontend: str) -> None:
    torch.manual_seed(0)
    model, x = _mlp().eval(), torch.randn(4, 32)
    compiled = lg.compile(model, frontend=frontend)
    compiled(x)
    model[0].weight.data.mul_(2.0)  # .data has its own version counter: no check can see this
    compiled.refresh_weights()
    with torch.no_grad():
        assert _rel(compiled(x), model(x)) <= 1e-4


class MaskedAttention(nn.Module):
    """A constant all-True mask lets the compiler drop it; the mask is a buffer the user may change later."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(6, 6, dtype=torch.bool))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=self.mask)


def test_a_weight_the_structure_relied_on_recompiles() -> None:
    torch.manual_seed(0)
    model, q = MaskedAttention(), torch.randn(1, 2, 6, 4)
    compiled = lg.compile(model)
    with torch.no_grad():
        assert _rel(compiled(q), model(q)) <= 1e-4
        model.mask.copy_(torch.ones(6, 6, dtype=torch.bool).tril())
        assert _rel(compiled(q), model(q)) <= 1e-4


def test_torch_compile_backend_follows_the_weights_too() -> None:
    torch.manual_seed(0)
    model, x = _chain().eval(), torch.randn(3, 16)
    compiled = torch.compile(model, backend="lepton")
    with torch.no_grad():
        compiled(x)
        model[1].weight.mul_(-1.0)  # inside a merged chain
        assert _rel(compiled(x), model(x)) <= 1e-4


# ------------------------------------------------------------------------------------------ update_weights


def _perturbed(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in model.state_dict().items() if v.is_floating_point()
    }


def test_update_weights_serves_the_new_weights_and_leaves_the_module(tmp_path) -> None:
    """update_weights from a state dict or a safetensors file: the compiled model then gives what a fresh compile of
    the new weights gives, bit for bit, for every signature compiled before; the module passed in is untouched."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    c = lg.compile(model)
    xs = [torch.randn(3, 16), torch.randn(5, 16)]
    for x in xs:
        c(x)
    for i, source in enumerate(("dict", "file")):
        sd = _perturbed(model, i)
        if source == "file":
            save_file(sd, str(tmp_path / "w.safetensors"))
        assert c.update_weights(sd if source == "dict" else tmp_path / "w.safetensors") == 2
        ref_model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
        ref_model.load_state_dict(sd)
        ref = lg.compile(ref_model)
        for x in xs:
            assert torch.equal(c(x), ref(x))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bad_weight_updates_name_the_weight_and_keep_serving() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8)).eval()
    c = lg.compile(model)
    x = torch.randn(2, 16)
    y = c(x)
    for bad, says in (
        ({"0.wieght": torch.zeros(8, 16)}, "'0.wieght' is not a weight of the model"),
        (
            {"0.weight": torch.zeros(8, 15)},
            r"'0.weight' is torch.float32\[8, 15\], the model's is torch.float32\[8, 16\]",
        ),
        ({"0.bias": torch.zeros(8, dtype=torch.float64)}, "'0.bias' is torch.float64"),
    ):
        with pytest.raises(lg.InputError, match=says):
            c.update_weights(bad)
        assert torch.equal(c(x), y)
    with pytest.raises(lg.InputError, match="cannot read"):
        c.update_weights("/nonexistent/w.safetensors")


def test_update_weights_under_concurrent_calls_every_result_is_one_version() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
    c = lg.compile(model)
    x = torch.randn(8, 16)
    versions = [c(x)]
    updates = [_perturbed(model, s) for s in range(3)]
    for sd in updates:
        m = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
        m.load_state_dict(sd)
        versions.append(lg.compile(m)(x))

    def updates_in_turn() -> None:
        for i, sd in enumerate(updates, start=1):
            c.update_weights(sd)
            assert torch.equal(c(x), versions[i])

    results = results_while(lambda: c(x), updates_in_turn)
    assert len(results) > 10
    assert all(any(torch.equal(r, v) for v in versions) for r in results)
