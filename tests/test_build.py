"""The build contract (STYLE R13): _C is built into the package, portable, stubbed, and the entry scripts agree.

The portability check disassembles _C: AVX-512 instructions may appear only in functions named ``*_avx512*``,
AVX/AVX2 ones only in ``*_avx2*`` or ``*_avx512*`` ones. Everything else is the portable base object, which has to
run on any x86-64 CPU (no -march=native; ISA flags only on the per-ISA translation units, see CMakeLists.txt).
Within AVX-512, the extensions dispatched on their own (issue 22: an AVX-512 CPU without them still runs the
AVX-512 fp32 kernels) stay in their code: VNNI instructions only in ``*_avx512vnni*`` functions, BF16 ones only in
``*_avx512*`` functions with ``bf16`` in their name.
"""

from __future__ import annotations

import ast
import importlib
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# EVEX-only operands: zmm registers, mask registers, xmm/ymm16-31, embedded broadcast or masking.
_EVEX = re.compile(r"%zmm\d|%k[0-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b|\{1to\d+\}|\{%k[0-7]\}")
_FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
_VNNI = re.compile(r"^vpdp(bu|ws)sds?\b")  # vpdpbusd(s), vpdpwssd(s)
_BF16 = re.compile(r"^(vdpbf16ps|vcvtne2ps2bf16|vcvtneps2bf16)\b")


def isa_leaks(disassembly: str) -> tuple[list[str], dict[str, int]]:
    """(leaks, counts) for `objdump -d --no-show-raw-insn -C` text: leaks name function and instruction; counts
    the AVX-512, VNNI, BF16 and AVX instructions found inside the per-ISA functions (to show the scan saw them)."""
    leaks: list[str] = []
    counts = {"avx512": 0, "avx2": 0, "vnni": 0, "bf16": 0}
    func = ""
    for line in disassembly.splitlines():
        if m := _FUNC.match(line):
            func = m.group(1)
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[1].strip():
            continue
        insn = parts[1].strip()
        is_avx512 = bool(_EVEX.search(insn))
        is_avx = is_avx512 or insn.startswith("v") or "%ymm" in insn
        if _VNNI.match(insn):
            if "_avx512vnni" in func:
                counts["vnni"] += 1
            else:
                leaks.append(f"VNNI in {func}: {insn}")
        if _BF16.match(insn):
            if "_avx512" in func and "bf16" in func:
                counts["bf16"] += 1
            else:
                leaks.append(f"BF16 in {func}: {insn}")
        if "_avx512" in func:
            counts["avx512"] += is_avx512
        elif is_avx512:
            leaks.append(f"AVX-512 in {func}: {insn}")
        elif "_avx2" in func:
            counts["avx2"] += is_avx
        elif is_avx:
            leaks.append(f"AVX in {func}: {insn}")
    return leaks, counts


def _load_C():
    return importlib.import_module("lepton_graph._C")


def test_extension_is_built_into_the_package() -> None:
    _C = _load_C()
    assert Path(_C.__file__).parent.name == "lepton_graph"
    info = _C.build_info()
    if platform.machine() in ("x86_64", "AMD64"):
        assert info["avx2_kernels"] and info["avx512_kernels"], info


def test_every_C_symbol_has_a_stub_and_back() -> None:
    stub = ast.parse((ROOT / "lepton_graph" / "_C.pyi").read_text(encoding="utf-8"))
    stubbed = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    exported = {n for n in dir(_load_C()) if not n.startswith("_")}
    assert exported - stubbed == set(), "symbols of _C without an entry in lepton_graph/_C.pyi"
    assert stubbed - exported == set(), "entries in lepton_graph/_C.pyi that _C does not define"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 ISA check")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
def test_no_avx_outside_isa_kernels() -> None:
    so = _load_C().__file__
    text = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", so], capture_output=True, text=True, check=True
    ).stdout
    leaks, counts = isa_leaks(text)
    assert not leaks, "ISA-specific code outside the *_avx2/*_avx512 kernels:\n" + "\n".join(leaks[:20])
    # Names must survive (install.strip = false), or the scan above could not tell kernels apart.
    assert counts["avx512"] > 0 and counts["avx2"] > 0 and counts["vnni"] > 0 and counts["bf16"] > 0, counts


def test_isa_leak_scan_flags_misplaced_instructions() -> None:
    text = "\n".join(
        [
            "0000000000000100 <lg::gemm::detail::impl_avx512vnni::micro_t<4, 2>(long)>:",
            "     100:\tvpdpbusd %zmm1,%zmm0,%zmm2",
            "0000000000000200 <lg::conv::impl_avx512::tile_bf16<3>(lg::conv::TileArgs const&)>:",
            "     200:\tvdpbf16ps %zmm1,%zmm0,%zmm2",
            "0000000000000300 <lg::conv::impl_avx512::tile<3>(lg::conv::TileArgs const&)>:",
            "     300:\tvdpbf16ps %zmm1,%zmm0,%zmm2",
            "     304:\tvpdpbusd %zmm1,%zmm0,%zmm2",
            "0000000000001000 <lg::kernels::relu_f32_avx512(float const*, float*, long)>:",
            "    1000:\tvmaxps %zmm1,%zmm0,%zmm0",
            "0000000000002000 <lg::kernels::relu_f32_avx2(float const*, float*, long)>:",
            "    2000:\tvmaxps %ymm1,%ymm0,%ymm0",
            "    2004:\tvmovups %xmm17,(%rdi)",
            "0000000000003000 <std::vector<long, std::allocator<long> >::_M_realloc_insert()>:",
            "    3000:\tvmovdqu64 (%rsi),%ymm0{%k1}",
            "    3008:\tvpxor %xmm0,%xmm0,%xmm0",
            "    3010:\tmovups %xmm0,(%rdi)",
        ]
    )
    leaks, counts = isa_leaks(text)
    assert counts == {"avx512": 5, "avx2": 1, "vnni": 1, "bf16": 1}
    assert [leak.split(":")[0] for leak in leaks] == [
        "BF16 in lg",  # a bf16 instruction in a function not named for bf16
        "VNNI in lg",  # a VNNI instruction outside the _avx512vnni unit
        "AVX-512 in lg",
        "AVX-512 in std",
        "AVX in std",
    ]


def test_cmake_base_build_is_portable() -> None:
    lines = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8").splitlines()
    cmake = "\n".join(line.split("#", 1)[0] for line in lines)
    assert not re.search(r"-m(arch|tune)=native", cmake), "the wheel must run on any x86-64 CPU"


def test_torch_requirement_allows_the_pinned_torch() -> None:
    from packaging.requirements import Requirement

    setup = (ROOT / ".ci" / "setup.sh").read_text(encoding="utf-8")
    pinned = re.search(r"TORCH_VERSION:-([0-9.]+)\}", setup)
    assert pinned, ".ci/setup.sh pins the torch version it installs first"
    reqs = [Requirement(r) for r in metadata.requires("lepton_graph") or []]
    torch_reqs = [r for r in reqs if r.name == "torch"]
    assert torch_reqs and all(r.specifier.contains(pinned.group(1)) for r in torch_reqs)


def test_entry_scripts_match_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for script in (".ci/test.sh", "bench/run_all.sh"):
        assert (ROOT / script).is_file(), script
        assert f"bash {script}" in readme, f"README.md should show `bash {script}`"
    assert "bash .ci/test.sh" in ci_run, ".ci/run must run the README's test command"
