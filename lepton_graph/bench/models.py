"""The models a bench runs: zoo entries built on the bench's device, their eager reference outputs."""

from __future__ import annotations

import gc
import time
from typing import Any

import torch

from .. import zoo
from .accuracy import snapshot
from .timing import Settings


def _model_base(name: str, settings: Settings) -> tuple[dict[str, Any], torch.nn.Module, tuple, dict, list]:
    entry = zoo.get(name)
    t0 = time.perf_counter()
    base = {
        "model": name,
        "model_desc": entry.description,
        "device": settings.device,
        "torch_threads": torch.get_num_threads(),
    }
    model, (args, kwargs) = zoo.build(name, seed=settings.seed)
    model = model.to(settings.device)
    args, kwargs = _to_device((args, kwargs), settings.device)
    base["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
    base["build_s"] = time.perf_counter() - t0
    base["attn_implementation"] = getattr(getattr(model, "config", None), "_attn_implementation", None)
    with torch.no_grad():
        ref = snapshot(model(*args, **kwargs))
    base["out_leaves"] = [(p, list(t.shape)) for p, t in ref[:8]]
    return base, model, args, kwargs, ref


def _to_device(tree: Any, device: str) -> Any:
    if device == "cpu":
        return tree
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: _to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_device(v, device) for v in tree)
    return tree


def _reset_between_models() -> None:
    try:
        import torch._dynamo

        torch._dynamo.reset()
    except Exception:  # noqa: BLE001 - nothing to reset
        pass
    gc.collect()
