"""Accuracy of a backend's outputs against eager's: tensor leaves of any output pytree, compared with the one
error measure (ir.metrics)."""

from __future__ import annotations

from typing import Any

import torch

from ..ir.metrics import leaf_error, worse
from .peers import flatten_outputs


def snapshot(out: Any) -> list[tuple[str, torch.Tensor]]:
    """Detached CPU copies of the tensor leaves (outputs may alias buffers the next call overwrites)."""
    return [(p, t.detach().to("cpu", copy=True)) for p, t in flatten_outputs(out)]


def compare(out: list[tuple[str, torch.Tensor]], ref: list[tuple[str, torch.Tensor]]) -> dict[str, Any]:
    """max_rel_err = max over leaves of max|y - ref| / max(max|ref|, tiny), rel_l2 = max over leaves of
    ||y - ref|| / ||ref|| (the quantization error measure); NaN anywhere makes them NaN."""
    note = None
    pairs = list(zip(out, ref, strict=False))
    if [p for p, _ in out] != [p for p, _ in ref]:
        same_shapes = len(out) == len(ref) and all(a.shape == b.shape for (_, a), (_, b) in pairs)
        if same_shapes:
            # A flat list of outputs (ONNX Runtime, OpenVINO) is expected to differ from eager's pytree.
            flat = all(p == f"out[{i}]" for i, (p, _) in enumerate(out))
            note = None if flat else "compared by position (output structure differs from eager)"
        elif out and ref and out[0][1].shape == ref[0][1].shape:
            pairs, note = pairs[:1], f"compared first output only ({len(out)} vs {len(ref)} tensor leaves)"
        else:
            return {
                "max_abs_err": None,
                "max_rel_err": None,
                "rel_l2": None,
                "note": f"outputs not comparable: {len(out)} vs {len(ref)} tensor leaves, "
                f"shapes {[tuple(t.shape) for _, t in out[:3]]} vs {[tuple(t.shape) for _, t in ref[:3]]}",
            }
    worst: dict[str, Any] = {
        "max_abs_err": 0.0,
        "max_rel_err": 0.0,
        "rel_l2": 0.0,
        "worst_leaf": None,
        "leaves_compared": len(pairs),
        "note": note,
    }
    for (_, y), (ref_path, r) in pairs:
        if y.shape != r.shape:
            return {
                **worst,
                "max_abs_err": None,
                "max_rel_err": None,
                "rel_l2": None,
                "note": f"shape mismatch at {ref_path}: {tuple(y.shape)} vs {tuple(r.shape)}",
            }
        abs_err, rel_err, rel_l2 = leaf_error(y, r)
        if worst["worst_leaf"] is None or worse(rel_err, worst["max_rel_err"]):
            worst.update(max_rel_err=rel_err, worst_leaf=ref_path)
        if worse(abs_err, worst["max_abs_err"]):
            worst["max_abs_err"] = abs_err
        if worse(rel_l2, worst["rel_l2"]):
            worst["rel_l2"] = rel_l2
    return worst
