"""The one measure of how far outputs are from a reference: used by the verifier's per-pass drift, the quantization
report, the accuracy budget and the bench. Per tensor leaf: max |y - ref|, that over max |ref|, and the relative L2
error ||y - ref|| / ||ref||, in float64, denominators floored at float32's smallest normal; over several leaves the
worst of each, NaN worse than any number (a NaN output is never reported as accurate)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

FLOOR = torch.finfo(torch.float32).tiny


def leaf_error(y: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    """(max abs error, max abs error / max |ref|, relative L2 error) of one tensor; zeros for empty tensors."""
    if y.numel() == 0:
        return 0.0, 0.0, 0.0
    y64, r64 = y.detach().to("cpu", torch.float64), ref.detach().to("cpu", torch.float64)
    d = y64 - r64
    abs_err = d.abs().max().item()
    return abs_err, abs_err / max(r64.abs().max().item(), FLOOR), d.norm().item() / max(r64.norm().item(), FLOOR)


def worse(a: float, b: float) -> bool:
    """a > b, with NaN worse than any number."""
    return (math.isnan(a) and not math.isnan(b)) or a > b


def output_error(ref: Sequence[Any], out: Sequence[Any]) -> dict[str, float]:
    """Over the floating-point tensor pairs of two flat output lists: the worst ``max_abs``, ``max_rel`` and
    ``rel_l2`` (see the module doc); non-float and non-tensor entries are skipped."""
    worst = {"max_abs": 0.0, "max_rel": 0.0, "rel_l2": 0.0}
    for a, b in zip(ref, out):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.is_floating_point()):
            continue
        for key, e in zip(("max_abs", "max_rel", "rel_l2"), leaf_error(b, a)):
            if worse(e, worst[key]):
                worst[key] = e
    return worst
