"""Random ops give eager's random numbers: the RNG calls around them (a reseed inside forward, as PyTorch's OpInfo
wrappers do) keep their order. Before (commit 4e35687) torch.export dropped the seed call and kept the random op,
so rand_like / randn_like / normal / bernoulli / rrelu came out different; the first Dynamo call also drew twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import lepton_graph as lg

OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "rand_like": torch.rand_like,
    "randn_like": torch.randn_like,
    "normal": lambda x: torch.normal(x, 0.5),
    "bernoulli": lambda x: torch.bernoulli(torch.sigmoid(x)),
    "rrelu": lambda x: nn.functional.rrelu(x, training=True),
    "dropout": lambda x: nn.functional.dropout(x, 0.3, training=True),
}


class Reseeding(nn.Module):
    def __init__(self, op: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = torch.get_rng_state()
        try:
            torch.manual_seed(42)
            return self.op(x) + x
        finally:
            torch.set_rng_state(state)


class Drawing(nn.Module):
    def __init__(self, op: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x) * 2 + self.op(x)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("wrapper", [Reseeding, Drawing])
def test_random_ops_follow_the_rng_as_eager_does(name: str, wrapper: type[nn.Module]) -> None:
    model = wrapper(OPS[name])
    x = torch.randn(6, 7)
    compiled = lg.compile(model)
    for seed in (1, 2):  # the first call compiles, the second runs the cached variant
        torch.manual_seed(seed)
        got = compiled(x)
        after_compiled = torch.get_rng_state()
        torch.manual_seed(seed)
        want = model(x)
        assert torch.equal(got, want), f"{name}: max diff {(got - want).abs().max()}"
        assert torch.equal(after_compiled, torch.get_rng_state()), "the generator advanced differently"
