"""Native CPU kernels (csrc/kernels/eltwise*.cpp via lepton_graph.backends.cpu.native) against torch eager.

Every ISA variant the machine has is tested in-process (set_max_isa), and once more in fresh interpreters with
LEPTON_DISABLE_AVX512=1 / LEPTON_DISABLE_AVX2=1, which must hide those ISAs from detection itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lepton_graph.backends.cpu import native

from .isa import ISA_PARAMS, dispatch_at

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")

# Sizes around every vector width and unroll step (8/16/32/64), plus ones large enough to be split across threads.
EDGE_SIZES = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 1000, 16383, 16385, 65537]
sizes = st.one_of(st.sampled_from(EDGE_SIZES), st.integers(min_value=0, max_value=70_000))


def _data(n: int, seed: int) -> torch.Tensor:
    """Random floats with the special values (NaN, ±inf, -0.0, denormal) sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * 4
    if n:
        specials = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e-40, -1e-40])
        idx = torch.randint(0, n, (min(n, 16),), generator=g)
        x[idx] = specials[torch.randint(0, len(specials), (len(idx),), generator=g)]
    return x


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(n=sizes, seed=st.integers(0, 2**31 - 1))
def test_relu_f32_matches_torch(isa: str, n: int, seed: int) -> None:
    x = _data(n, seed)
    expected = torch.relu(x)
    with dispatch_at(isa):
        y = native.relu_f32(x)
    # Bit-exact, -0.0 and NaN included: relu is a select, not arithmetic.
    assert torch.equal(y.view(torch.int32), expected.view(torch.int32))


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(n=sizes, seed=st.integers(0, 2**31 - 1))
def test_add_f32_matches_torch(isa: str, n: int, seed: int) -> None:
    a, b = _data(n, seed), _data(n, seed + 1)
    with dispatch_at(isa):
        y = native.add_f32(a, b)
    torch.testing.assert_close(y, a + b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4), (1,), ()])
def test_kernels_keep_shape_and_run_in_place(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    expected = torch.relu(x)
    y = native.relu_f32(x)
    assert y.shape == x.shape
    assert native.relu_f32(x, out=x) is x
    torch.testing.assert_close(x, expected)
    a = torch.randn(shape)
    total = a + x
    assert native.add_f32(a, x, out=a) is a
    torch.testing.assert_close(a, total)


def test_thread_count_does_not_change_results() -> None:
    x, b = _data(200_003, 0), _data(200_003, 1)
    before = native.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            native.set_num_threads(threads)
            assert native.get_num_threads() == threads
            outs.append((native.relu_f32(x), native.add_f32(x, b)))
    finally:
        native.set_num_threads(before)
    bits = [(relu.view(torch.int32), add.view(torch.int32)) for relu, add in outs]  # NaN-safe comparison
    for relu, add in bits[1:]:
        assert torch.equal(relu, bits[0][0])
        assert torch.equal(add, bits[0][1])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: torch.randn(4, 6).t(), "x must be contiguous"),
        (lambda: torch.randn(8)[::2], "x must be contiguous"),
        (lambda: torch.randn(4, dtype=torch.float64), "x must be float32"),
        (lambda: torch.randn(4, device="meta"), "x must be on the cpu device"),
    ],
)
def test_relu_wrapper_rejects_bad_tensors(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        native.relu_f32(make())


def test_add_wrapper_rejects_mismatches() -> None:
    a = torch.randn(6)
    with pytest.raises(ValueError, match="b must be contiguous"):
        native.add_f32(a, torch.randn(12)[::2])
    with pytest.raises(ValueError, match="b has 5 elements but a has 6"):
        native.add_f32(a, torch.randn(5))
    with pytest.raises(ValueError, match="out has 3 elements"):
        native.add_f32(a, a, out=torch.empty(3))
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        native.add_f32(a, [1.0] * 6)


def test_raw_kernels_name_the_bad_argument() -> None:
    from lepton_graph import _C

    x, y = torch.randn(16), torch.empty(16)
    with pytest.raises(ValueError, match="relu_f32: argument 'x_ptr' is null"):
        _C.relu_f32(0, y.data_ptr(), 4)
    with pytest.raises(ValueError, match="argument 'n' must be >= 0, got -1"):
        _C.relu_f32(x.data_ptr(), y.data_ptr(), -1)
    with pytest.raises(ValueError, match="argument 'b_ptr' is not aligned to 4 bytes"):
        _C.add_f32(x.data_ptr(), x.data_ptr() + 2, y.data_ptr(), 4)
    with pytest.raises(ValueError, match="argument 'y_ptr' partially overlaps x_ptr"):
        _C.relu_f32(x.data_ptr(), x.data_ptr() + 4, 8)
    _C.relu_f32(0, 0, 0)  # nothing to touch: null is fine for n == 0


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="argument 'n' must be >= 1"):
        native.set_num_threads(0)
    with pytest.raises(ValueError, match="must be one of 'avx512', 'avx2', 'scalar'"):
        native.set_max_isa("sse4")


def test_describe_view_matches_torch() -> None:
    from lepton_graph import _C

    for t in (torch.randn(3, 4), torch.randn(3, 4).t(), torch.zeros(0, 5, dtype=torch.int8), torch.ones(2, 1)[:, :1]):
        info = _C.describe_view(t.data_ptr(), str(t.dtype), list(t.shape), list(t.stride()))
        assert info == {
            "dtype": str(t.dtype).removeprefix("torch."),
            "itemsize": t.element_size(),
            "numel": t.numel(),
            "contiguous": t.is_contiguous(),
        }
    with pytest.raises(ValueError, match="argument 'dtype' is not a supported dtype: 'complex64'"):
        _C.describe_view(64, "complex64", [2], [1])
    with pytest.raises(ValueError, match="argument 'strides' has 1 entries but shape has 2"):
        _C.describe_view(64, "float32", [2, 2], [1])


_SUBPROCESS_CHECK = textwrap.dedent(
    """
    import sys
    import torch
    from lepton_graph import _C
    from lepton_graph.backends.cpu import native

    hidden = sys.argv[1:]
    assert not any(_C.cpu_features()[f] for f in hidden), _C.cpu_features()
    for n in (0, 1, 17, 1000, 70001):
        x = torch.randn(n)
        assert torch.equal(native.relu_f32(x), torch.relu(x))
        assert torch.equal(native.add_f32(x, x), x + x)
    print(native.kernel_isa())
    """
)


@pytest.mark.parametrize(
    ("env", "hidden", "expected"),
    [
        ("LEPTON_DISABLE_AVX512", ["avx512f", "avx512_bf16"], "avx2"),
        ("LEPTON_DISABLE_AVX2", ["avx2", "avx512f"], "scalar"),
    ],
)
def test_disable_env_forces_lower_isa(monkeypatch: pytest.MonkeyPatch, env: str, hidden: list[str], expected: str):
    """The env vars act at detection (cpu_features), in a fresh process, before any set_max_isa."""
    monkeypatch.setenv(env, "1")
    script = [sys.executable, "-c", _SUBPROCESS_CHECK, *hidden]
    done = subprocess.run(script, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    if expected == "avx2" and not native.features().get("avx2"):
        expected = "scalar"
    assert done.stdout.strip() == expected


_VARIANTS_CHECK = textwrap.dedent(
    """
    import json, torch
    from lepton_graph import _C
    from lepton_graph.backends.cpu import gemm as G
    from lepton_graph.ir.defs.quant import qlinear, quantize_weight_per_channel
    gen = torch.Generator().manual_seed(0)
    a, w = torch.randn(9, 70, generator=gen), torch.randn(40, 70, generator=gen)
    wq, scale = quantize_weight_per_channel(w)
    c = torch.empty(9, 40)
    _C.gemm_u8s8_dynamic(a.data_ptr(), 9, 70, 70, G.pack_weight_s8(wq, scale), c.data_ptr(), 40)
    exact = torch.equal(c, qlinear(a, wq, scale, act="dynamic"))
    pb = G.pack_weight(w, transposed=True, bf16=True)
    _C.gemm_packed(a.data_ptr(), 9, 70, 70, pb, c.data_ptr(), 40, 0, 0, 0, False, 0)
    bf16_err = float((c - a @ w.t()).abs().max() / (a @ w.t()).abs().max())
    print(json.dumps({"variants": _C.kernel_variants(), "features": _C.cpu_features(), "int8_exact": exact,
                      "bf16_err": bf16_err}))
    """
)


def _variants_in_subprocess(monkeypatch: pytest.MonkeyPatch, *env: str) -> dict:
    import json

    for name in env:
        monkeypatch.setenv(name, "1")
    done = subprocess.run([sys.executable, "-c", _VARIANTS_CHECK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kernel_variants_follow_the_features() -> None:
    """Dispatch by feature (issue 22): AVX-512 fp32 kernels need F+BW+VL only; int8 takes its AVX-512 kernels only
    with VNNI (else the AVX2 ones); bf16 runs natively only with AVX512_BF16 (else emulated)."""
    f, v = native.features(), native.kernel_variants()
    avx512 = f["avx512f"] and f["avx512bw"] and f["avx512vl"] and f["fma"]
    assert v["gemm_f32"] == v["conv_f32"] == v["sdpa_f32"] == native.kernel_isa()
    assert v["gemm_f32"] == ("avx512" if avx512 else "avx2" if f["avx2"] and f["fma"] else "scalar")
    assert v["gemm_int8"] == ("avx512vnni" if avx512 and f["avx512_vnni"] else "avx2" if f["avx2"] else "scalar")
    assert (
        v["gemm_bf16"]
        == v["conv_bf16"]
        == v["sdpa_bf16"]
        == ("avx512bf16" if avx512 and f["avx512_bf16"] else "emulated")
    )
    with dispatch_at("scalar"):
        assert set(native.kernel_variants().values()) == {"scalar", "emulated"}


@pytest.mark.parametrize(
    ("env", "int8", "bf16"),
    [
        (["LEPTON_DISABLE_AVX512_VNNI"], "not avx512vnni", None),  # as on Skylake-SP
        (["LEPTON_DISABLE_AVX512_BF16"], None, "emulated"),  # as on Ice Lake, Cascade Lake
        (["LEPTON_DISABLE_AVX512_VNNI", "LEPTON_DISABLE_AVX512_BF16"], "not avx512vnni", "emulated"),
    ],
)
def test_hiding_one_avx512_extension_keeps_the_others(
    monkeypatch: pytest.MonkeyPatch, env: list[str], int8: str | None, bf16: str | None
) -> None:
    """In a fresh process with VNNI and/or BF16 hidden, the fp32 kernels keep their variant (AVX-512 on an AVX-512
    CPU), the int8 GEMM runs the AVX2 kernels and stays exact, and bf16 is emulated with the same rounding."""
    got = _variants_in_subprocess(monkeypatch, *env)
    v = got["variants"]
    assert v["gemm_f32"] == native.kernel_variants()["gemm_f32"]
    if int8:
        assert v["gemm_int8"] != "avx512vnni" and not got["features"]["avx512_vnni"]
    if bf16:
        assert v["gemm_bf16"] == bf16 and not got["features"]["avx512_bf16"]
    assert got["int8_exact"]
    assert got["bf16_err"] < 2e-2


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_fma_peak_measures_the_dispatched_isa(isa: str) -> None:
    """The probe times the ISA the kernels dispatch to; one thread cannot beat the peak of several by more than
    noise, and the portable path (no FMA loop) reports 0 rather than a made-up figure."""
    from lepton_graph import _C

    with dispatch_at(isa):
        one = _C.fma_peak(0.05, 1)
        two = _C.fma_peak(0.05, 2)
    assert one["isa"] == two["isa"] == isa and (one["threads"], two["threads"]) == (1, 2)
    if isa == "scalar":
        assert one["gflops"] == two["gflops"] == 0.0
        return
    lanes = 16 if isa == "avx512" else 8
    # at least a few hundred MHz of one FMA port, at most 2 ports at 6 GHz: a loop that was optimised away or timed
    # wrongly falls outside
    assert 0.3 * lanes * 2 < one["gflops_per_thread"] < 6.0 * 2 * lanes * 2
    assert one["gflops"] == one["gflops_per_thread"]
    assert two["gflops"] < 2.5 * two["gflops_per_thread"]
    assert _C.get_num_threads() == native.get_num_threads()  # the probe restores the thread count


def test_fma_peak_rejects_bad_arguments() -> None:
    from lepton_graph import _C

    with pytest.raises(ValueError, match="seconds"):
        _C.fma_peak(0.0, 1)
    with pytest.raises(ValueError, match="threads"):
        _C.fma_peak(0.1, -1)
