"""Memory over a long run (issue 11): a model compiled with dynamic=True and called with many batch sizes does not
grow the process: one variant serves every size, and no call leaves buffers behind."""

from __future__ import annotations

import sys

import pytest
import torch

import lepton_graph
from lepton_graph import zoo
from lepton_graph.backends.cpu import native

pytestmark = [
    pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm"),
]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _batch(t: torch.Tensor, b: int) -> torch.Tensor:
    return t[:1].expand(b, *t.shape[1:]).contiguous()


@pytest.mark.parametrize("name", ["mlp_tiny", "bert_tiny"])
def test_rss_does_not_grow_over_3000_calls_with_64_batch_sizes(name: str) -> None:
    model, (args, kwargs) = zoo.build(name)
    c = lepton_graph.compile(model, dynamic=True)
    marks = []
    with torch.no_grad():
        for i in range(3000):
            b = 1 + (i * 37) % 64  # every size in 1..64, visited in a scattered order
            call_args, call_kwargs = [_batch(a, b) for a in args], {k: _batch(v, b) for k, v in kwargs.items()}
            out = c(*call_args, **call_kwargs)
            if i < 64 and i % 16 == 0:  # a few sizes against eager (the zoo tests hold the rest)
                ref = torch.utils._pytree.tree_leaves(model(*call_args, **call_kwargs))
                got = torch.utils._pytree.tree_leaves(out)
                assert all(torch.allclose(x, y, rtol=1e-4, atol=1e-5) for x, y in zip(got, ref, strict=True))
            if i in (300, 2999):
                marks.append(_rss_mb())
    assert len(c._cache.variants) == 1
    assert marks[1] - marks[0] < 8.0, f"RSS grew from {marks[0]:.1f} MB to {marks[1]:.1f} MB over 2700 calls"
