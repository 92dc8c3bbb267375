"""Weight-change detection: a compiled graph follows its module's parameters and buffers.

Constants a graph was compiled from are held by reference; what passes derived from them (folded, merged,
transposed, quantized) and what lowering packed are copies. Before each call the tensors a graph was built from
are compared with what they were then (object identity, version counter, storage address): an optimizer step, an
in-place update under ``no_grad``, a replaced ``nn.Parameter`` or ``p.data = t`` all show. Only what changed is
re-derived and re-packed (``CompiledGraph.refresh``). Updates through ``p.data.<op>_()`` bypass the version
counter and cannot be seen: ``CompiledModel.refresh_weights()`` is for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _state(t: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    return t, t._version, t.data_ptr()


class CaptureInProgress(Exception):
    """The module's weights are torch.export's stand-ins: another thread is capturing this module (non-strict export
    swaps its parameters for fake tensors while it traces). The caller waits for that compile and checks again."""


def _in_capture(t: object) -> bool:
    # FakeTensor and FunctionalTensor are tensor subclasses without storage; a user's weight is a plain tensor
    return (
        isinstance(t, torch.Tensor)
        and type(t) not in (torch.Tensor, torch.nn.Parameter)
        and (isinstance(t, torch._subclasses.fake_tensor.FakeTensor) or torch._is_functional_tensor(t) or t.is_meta)
    )


class WeightWatch:
    """The identity, version and storage of the tensors behind a graph's constant keys, as last compiled."""

    __slots__ = ("keys", "_seen")

    def __init__(self, keys: Sequence[str], current: Sequence[torch.Tensor]) -> None:
        self.keys = list(keys)
        self._seen = [_state(t) for t in current]

    def changed(self, current: Sequence[torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """The keys whose tensor differs from the last snapshot (and the tensors now), or None: the hot path."""
        for t, (s, ver, ptr) in zip(current, self._seen):
            if t is not s or t._version != ver or t.data_ptr() != ptr:
                break
        else:
            return None
        out = {
            k: t
            for k, t, (s, ver, ptr) in zip(self.keys, current, self._seen)
            if t is not s or t._version != ver or t.data_ptr() != ptr
        }
        self._seen = [_state(t) for t in current]
        return out

    def snapshot(self, current: Sequence[torch.Tensor]) -> None:
        """Accept the tensors as they are now (after the graph's own buffer write-backs)."""
        self._seen = [_state(t) for t in current]


class ModuleWeights:
    """The parameters and buffers of a module behind a graph's constant keys (key -> qualified name), read from
    the module on every check, so a replaced parameter object is seen as well as an in-place update."""

    __slots__ = ("_entries",)

    def __init__(self, module: torch.nn.Module, names: dict[str, str]) -> None:
        refs = []
        for key, fqn in names.items():
            prefix, _, attr = fqn.rpartition(".")
            owner = module.get_submodule(prefix) if prefix else module
            table = owner._parameters if attr in owner._parameters else owner._buffers
            if table.get(attr) is not None:
                refs.append((key, table, attr))
        self._entries: list[tuple[str, dict, str, Any, torch.Tensor, int, int, Any]] = []
        self._take(refs)

    def _take(self, refs: Sequence[tuple[str, dict, str]]) -> None:
        # (key, table, name, table.get, tensor, version, address, tensor.data_ptr): bound methods made once, so
        # the hot path is one dict lookup, one identity test, one version read and one call per weight
        self._entries = [
            (key, d, name, d.get, d[name], *_state(d[name])[1:], d[name].data_ptr) for key, d, name in refs
        ]

    def changed(self) -> dict[str, torch.Tensor] | None:
        """The keys whose tensor changed since the last check (with the tensors now), or None: the hot path,
        about 0.3 us per weight."""
        for _, _, name, get, s, ver, ptr, s_ptr in self._entries:
            if get(name) is not s or s._version != ver or s_ptr() != ptr:
                break
        else:
            return None
        if any(_in_capture(d.get(name)) for _, d, name, *_ in self._entries):
            raise CaptureInProgress
        try:
            out = {
                key: d[name]
                for key, d, name, _, s, ver, ptr, _ in self._entries
                if d[name] is not s or d[name]._version != ver or d[name].data_ptr() != ptr
            }
        except (KeyError, AttributeError, TypeError) as e:
            raise RuntimeError(
                f"a parameter or buffer the model was compiled with is gone from it ({e}): compile it again"
            ) from None
        self.snapshot()
        return out

    def snapshot(self) -> None:
        """Accept the tensors as they are now (after the graph's own buffer write-backs)."""
        self._take([(key, d, name) for key, d, name, *_ in self._entries])
