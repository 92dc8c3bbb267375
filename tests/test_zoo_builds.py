"""The built-in zoo: every tiny (test-only) model builds deterministically and runs in eager mode."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lepton_graph import zoo

TINY = [n for n in zoo.names(include_test_only=True) if zoo.get(n).test_only]


def _skip_if_missing(name: str) -> None:
    for mod in zoo.get(name).needs:
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{name} needs {mod}")


def _leaves(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):  # transformers ModelOutput is an OrderedDict
        return [t for v in out.values() for t in _leaves(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _leaves(v)]
    return []


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_builds_and_runs_eager(name: str) -> None:
    _skip_if_missing(name)
    model, (args, kwargs) = zoo.build(name)
    assert not model.training
    with torch.no_grad():
        out = model(*args, **kwargs)
    leaves = _leaves(out)
    assert leaves, f"{name}: no tensor output"
    assert all(torch.isfinite(t).all() for t in leaves if t.is_floating_point())


@pytest.mark.parametrize("name", ["mlp_tiny", "resnet_tiny", "bert_tiny"])
def test_same_seed_gives_identical_weights_and_inputs(name: str) -> None:
    _skip_if_missing(name)
    rng_before = torch.get_rng_state()
    (m1, (a1, k1)), (m2, (a2, k2)) = zoo.build(name, seed=3), zoo.build(name, seed=3)
    assert torch.equal(rng_before, torch.get_rng_state()), "build() must leave the global RNG alone"
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert all(torch.equal(x, y) for x, y in zip([*a1, *k1.values()], [*a2, *k2.values()], strict=True))
    m3, _ = zoo.build(name, seed=4)
    assert any(not torch.equal(v, m3.state_dict()[k]) for k, v in s1.items() if v.is_floating_point())


def test_every_family_has_a_tiny_variant_and_bench_defaults_exclude_them() -> None:
    full = zoo.names()
    assert set(full) == {
        "mlp_b1",
        "mlp_b64",
        "resnet18_b1",
        "bert_b1_s128",
        "gpt2_b1_s128",
        "vit_b1",
        "minilm_b1",
        "minilm_b30",
        "llama_gqa_b1_s128",
        "swiglu_b8",
        "bart_b1_s128",
    }
    # random-weight families are tested through tiny variants; the real-weight MiniLM (6 layers, 384 wide) is
    # already small and is tested as it is (tests/models/test_minilm_quant.py)
    random_weights = {zoo.get(n).family for n in full} - {"minilm"}
    assert random_weights == {zoo.get(n).family for n in TINY}
    assert not set(TINY) & set(full)
    extra = set(zoo.names(include_extra=True)) - set(full)
    assert extra == {"bert_b1_s128_ids", "gpt2_b1_s128_nocache"} and not extra & set(TINY)


def test_resnet18_has_resnet18_shape() -> None:
    model = zoo.ResNet()  # not built: construction alone shows the layer structure
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(1 for c in convs if c.kernel_size != (1, 1)) + 1 == 18  # 17 convs 3x3/7x7 + the fc layer
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # torchvision resnet18's count


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="mlp_b1"):
        zoo.get("nope")
