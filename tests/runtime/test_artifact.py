"""Ahead-of-time export (lepton_graph/artifact/): round trips bit for bit, in a fresh process with pickle and
torch.load disabled; broken and hostile files give ArtifactError naming the problem; calls are guarded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lepton_graph
from lepton_graph import ArtifactError, InputError, UnsupportedError, zoo
from lepton_graph.artifact import container, panels
from lepton_graph.artifact.container import FORMAT, MAGIC, read_artifact, write_artifact
from lepton_graph.backends.cpu import native
from lepton_graph.config import config

from .calls import mlp_versions, results_while

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


class TwoHeads(nn.Module):
    """Keyword and positional inputs, a dict of outputs, a Python flag baked in."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.LayerNorm(32))
        self.a, self.b = nn.Linear(32, 5), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor, double: bool = False) -> dict[str, torch.Tensor]:
        h = self.body(x) * scale
        return {"a": self.a(h) * (2 if double else 1), "b": torch.softmax(self.b(h), -1)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple, dict, object]:
    torch.manual_seed(0)
    model = TwoHeads().eval()
    args, kwargs = (torch.randn(4, 12),), {"scale": torch.rand(32), "double": True}
    path = tmp_path_factory.mktemp("artifact") / "two_heads.lgraph"
    c = lepton_graph.compile(model)
    ref = c(*args, **kwargs)
    size = c.export(path)
    assert size == path.stat().st_size
    return path, args, kwargs, ref


@pytest.mark.parametrize("name", ["mlp_tiny", "resnet_tiny", "swiglu_tiny", "bert_tiny", "vit_tiny"])
def test_zoo_models_round_trip_bit_for_bit(name: str, tmp_path: Path) -> None:
    model, (args, kwargs) = zoo.build(name)
    c = lepton_graph.compile(model)
    ref = c(*args, **kwargs)
    path = tmp_path / f"{name}.lgraph"
    c.export(path)
    loaded = lepton_graph.load(path)
    assert _equal(loaded(*args, **kwargs), ref)
    rep = loaded.report().as_dict()
    assert rep["format"] == FORMAT and rep["nodes"] > 0


def test_quantized_int8_conv_model_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10)
    )
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    cal = [(torch.randn(2, 3, 8, 8),) for _ in range(3)]
    path = tmp_path / "q.lgraph"
    size = lepton_graph.export(model, (x,), path, quantize="int8-static", calibration=cal)
    ref = lepton_graph.compile(model, quantize="int8-static", calibration=cal)(x)
    assert torch.equal(lepton_graph.load(path)(x), ref)
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert size < fp32_bytes / 2  # int8 weights as compiled, not the float ones


def test_loads_in_a_fresh_process_without_pickle(exported, tmp_path: Path) -> None:
    """The loader runs in a process that never imported this test module (the model's code), with pickle and
    torch.load patched to raise."""
    from safetensors.torch import load_file, save_file

    path, args, kwargs, ref = exported
    save_file({"x": args[0], "scale": kwargs["scale"]}, str(tmp_path / "in.safetensors"))
    script = textwrap.dedent(
        f"""
        import pickle, sys
        import torch

        def refuse(*a, **k):
            raise RuntimeError("pickle used")

        pickle.load = pickle.loads = refuse
        torch.load = refuse
        import lepton_graph
        from safetensors.torch import load_file, save_file
        assert "tests" not in sys.modules and not any("test_artifact" in m for m in sys.modules)
        inp = load_file({str(tmp_path / "in.safetensors")!r})
        m = lepton_graph.load({str(path)!r})
        out = m(inp["x"], scale=inp["scale"], double=True)
        save_file(out, {str(tmp_path / "out.safetensors")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    out = load_file(str(tmp_path / "out.safetensors"))
    assert _equal(dict(out), ref)


def test_calls_are_guarded_like_a_compiled_model(exported) -> None:
    path, args, kwargs, ref = exported
    m = lepton_graph.load(path)
    assert _equal(m(*args, **kwargs), ref)
    with pytest.raises(InputError, match=r"args\[0\]: expected shape \[4, 12\], got \[3, 12\]"):
        m(torch.randn(3, 12), **kwargs)
    with pytest.raises(InputError, match="expected dtype float32"):
        m(args[0].double(), **kwargs)
    with pytest.raises(InputError, match="exported with True"):
        m(*args, scale=kwargs["scale"], double=False)
    with pytest.raises(InputError, match="structure"):
        m(*args)


def test_dynamic_variants_keep_their_symbolic_sizes(tmp_path: Path) -> None:
    model, (args, kwargs) = zoo.build("bert_tiny")
    c = lepton_graph.compile(model, dynamic=True)
    c(*args, **kwargs)
    path = tmp_path / "dyn.lgraph"
    c.export(path)
    loaded = lepton_graph.load(path)
    gen = torch.Generator().manual_seed(0)
    for batch, seq in ((2, 7), (1, 23)):
        call = {"input_ids": torch.randint(0, 100, (batch, seq), generator=gen)}
        call["attention_mask"] = torch.ones(batch, seq, dtype=torch.long)
        assert _equal(loaded(**call), c(**call))
    with pytest.raises(InputError, match=r"shape like \[\*, \*\]"):
        loaded(input_ids=torch.zeros(2, 3, 4, dtype=torch.long), attention_mask=torch.ones(2, 3, dtype=torch.long))


def test_export_refusals_name_the_reason(tmp_path: Path) -> None:
    model, (args, kwargs) = zoo.build("mlp_tiny")
    dyn = lepton_graph.compile(model, frontend="dynamo")
    dyn(*args, **kwargs)
    with pytest.raises(UnsupportedError, match="cannot be exported yet: captured by Dynamo"):
        dyn.export(tmp_path / "dynamo.lgraph")
    c2 = lepton_graph.compile(model)
    with pytest.raises(UnsupportedError, match="0 variants"):
        c2.export(tmp_path / "none.lgraph")


# ---------------------------------------------------------------------------------------------- broken files


def test_truncation_at_every_section_boundary(exported, tmp_path: Path) -> None:
    path, *_ = exported
    data = path.read_bytes()
    header, sections = read_artifact(path)
    head_end = 16 + int.from_bytes(data[8:16], "little")
    cuts = {0, 7, 8, 15, 16, head_end - 1, head_end, len(data) - 1}
    for s in header["sections"]:
        cuts |= {head_end + s["offset"], head_end + s["offset"] + s["length"] - 1}
    for cut in sorted(c for c in cuts if 0 <= c < len(data)):
        bad = tmp_path / "cut.lgraph"
        bad.write_bytes(data[:cut])
        with pytest.raises(ArtifactError):
            lepton_graph.load(bad)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_flipped_bytes_never_load_silently_wrong(exported, tmp_path_factory, data) -> None:
    """Any flipped byte: either ArtifactError, or (a byte of the header's free text) the same outputs."""
    path, args, kwargs, ref = exported
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    bad = tmp_path_factory.mktemp("flip") / "f.lgraph"
    bad.write_bytes(bytes(blob))
    try:
        m = lepton_graph.load(bad)
    except ArtifactError:
        return
    assert _equal(m(*args, **kwargs), ref)


def test_bad_magic_and_newer_format(exported, tmp_path: Path) -> None:
    path, *_ = exported
    (tmp_path / "x.lgraph").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(ArtifactError, match="not a lepton_graph artifact"):
        lepton_graph.load(tmp_path / "x.lgraph")
    header, sections = read_artifact(path)
    header = {k: v for k, v in header.items() if k not in ("format", "sections")}
    newer = tmp_path / "newer.lgraph"
    write_artifact(newer, header, sections)
    blob = newer.read_bytes()
    n = int.from_bytes(blob[8:16], "little")
    head = json.loads(blob[16 : 16 + n])
    head["format"] = 99
    new_head = json.dumps(head).encode()
    newer.write_bytes(MAGIC + len(new_head).to_bytes(8, "little") + new_head + blob[16 + n :])
    with pytest.raises(ArtifactError, match="format version 99.*upgrade lepton_graph"):
        lepton_graph.load(newer)
    with pytest.raises(ArtifactError, match="cannot read"):
        lepton_graph.load(tmp_path / "missing.lgraph")


def _rewrite_graph(path: Path, out: Path, edit) -> None:
    """A well-formed (checksummed) file whose graph JSON was edited: what a hostile writer can produce."""
    header, sections = read_artifact(path)
    graph = json.loads(sections["graph"])
    edit(graph)
    sections = {**sections, "graph": json.dumps(graph).encode()}
    write_artifact(out, {k: v for k, v in header.items() if k not in ("format", "sections")}, sections)


def _first_node(graph: dict) -> dict:
    return graph["nodes"][0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: _first_node(g).update(op="os.system"), "unknown op"),
        (lambda g: _first_node(g).update(inputs=["nowhere"]), "not defined before it"),
        (lambda g: _first_node(g).update(attrs=[1, 2]), "expected an object"),
        (lambda g: next(iter(g["constants"].values())).update(shape=[3, 3]), "tensors section holds"),
        (lambda g: next(iter(g["constants"].values())).update(shape=[1 << 50]), "not a size"),
        (lambda g: g.update(outputs=["ghost"]), "not defined"),
        (lambda g: g.update(nodes={"a": 1}), "expected a list"),
        (
            lambda g: g["nodes"].insert(
                0,
                {
                    "op": "fallback",
                    "name": "evil",
                    "inputs": [],
                    "syms": [],
                    "outputs": [],
                    "attrs": {"target": "py:os.system", "args": {"$t": ["true"]}, "kwargs": {"$map": {}}},
                },
            ),
            "allow-list",
        ),
    ],
)
def test_hostile_graphs_are_refused(exported, tmp_path: Path, edit, message: str) -> None:
    path, *_ = exported
    bad = tmp_path / "bad.lgraph"
    _rewrite_graph(path, bad, edit)
    with pytest.raises(ArtifactError, match=message):
        lepton_graph.load(bad)


def test_library_output_types_load_as_dicts_without_the_library(tmp_path: Path) -> None:
    """transformers' ModelOutput is restored as such where transformers is imported; a process that never
    imported it gets a dict with the same keys (the loader never imports a module a file names)."""
    from safetensors.torch import load_file, save_file

    model, (args, kwargs) = zoo.build("bert_tiny")
    c = lepton_graph.compile(model)
    ref = c(*args, **kwargs)
    path = tmp_path / "bert.lgraph"
    c.export(path)
    assert type(lepton_graph.load(path)(*args, **kwargs)) is type(ref)
    save_file({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}, str(tmp_path / "in.safetensors"))
    script = textwrap.dedent(
        f"""
        import sys
        import lepton_graph
        from safetensors.torch import load_file, save_file
        m = lepton_graph.load({str(path)!r})
        out = m(**load_file({str(tmp_path / "in.safetensors")!r}))
        assert "transformers" not in sys.modules and type(out) is dict, (type(out), "transformers" in sys.modules)
        assert "plain" in m.report().as_dict()["outputs"]
        save_file({{k: v for k, v in out.items() if v is not None}}, {str(tmp_path / "out.safetensors")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    out = load_file(str(tmp_path / "out.safetensors"))
    assert out.keys() == {k for k, v in ref.items() if v is not None}
    assert all(torch.equal(out[k], ref[k]) for k in out)


def test_cli_export_run_inspect_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file, save_file

    from lepton_graph.cli import main

    path = tmp_path / "r.lgraph"
    assert main(["export", "resnet_tiny", "-o", str(path), "--quantize", "int8-static"]) == 0
    model, (args, _) = zoo.build("resnet_tiny")
    save_file({"arg0": args[0]}, str(tmp_path / "in.safetensors"))
    out_path = tmp_path / "out.safetensors"
    assert (
        main(["run", str(path), "--inputs", str(tmp_path / "in.safetensors"), "-o", str(out_path), "--bench", "3"]) == 0
    )
    (out,) = load_file(str(out_path)).values()
    assert torch.equal(out, lepton_graph.load(path)(*args))
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "3 calls: median" in text and "qconv2d x" in text and "I8 " in text
    assert main(["compile", "mlp_tiny", "--quantize", "int8-dynamic"]) == 0
    assert "quantization: int8-dynamic, 3 of 3 layers" in capsys.readouterr().out


def test_a_file_from_a_wider_isa_runs_on_this_cpus_kernels_and_says_so(exported, tmp_path: Path) -> None:
    """The exporting machine's kernel variants are recorded; where this CPU runs another variant (here: the
    header says AVX-512 VNNI), the loaded model re-packs for what this CPU has and the report names the change."""
    path, args, kwargs, ref = exported
    header, sections = read_artifact(path)
    header = {k: v for k, v in header.items() if k not in ("format", "sections")}
    header["machine"] = {**header["machine"], "kernel_variants": {**native.kernel_variants(), "gemm_int8": "isa-x"}}
    other = tmp_path / "other.lgraph"
    write_artifact(other, header, sections)
    m = lepton_graph.load(other)
    assert _equal(m(*args, **kwargs), ref)
    assert m.report().as_dict()["kernels"] == f"gemm_int8 isa-x -> {native.kernel_variants()['gemm_int8']}"
    assert lepton_graph.load(path).report().as_dict()["kernels"] == "as exported"


def test_cli_errors_name_the_problem_and_kwargs_models_calibrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input to the CLI is one line on stderr and exit code 2, not a traceback; a zoo model called with keyword
    arguments (BERT) exports int8-static (its calibration inputs are passed as keyword calls)."""
    from lepton_graph.cli import main

    for argv, says in (
        (["export", "no_such_model", "-o", str(tmp_path / "a")], "unknown zoo model 'no_such_model'"),
        (["export", "no_such_pkg.mod:fn", "-o", str(tmp_path / "a")], "No module named 'no_such_pkg'"),
        (["run", str(tmp_path / "missing.lgraph"), "--inputs", str(tmp_path / "x.npz")], "cannot read artifact"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    path = tmp_path / "b.lgraph"
    assert main(["export", "bert_tiny", "-o", str(path), "--quantize", "int8-static"]) == 0
    model, (args, kwargs) = zoo.build("bert_tiny")
    ref = lepton_graph.compile(model, quantize="int8-static", calibration=[kwargs])(*args, **kwargs)
    assert lepton_graph.load(path).report().as_dict()["nodes"] > 0
    out = lepton_graph.load(path)(*args, **kwargs)
    assert float((out[0] - ref[0]).norm() / ref[0].norm()) < 0.2  # both quantized, calibrated on other inputs


def test_inspect_checks_the_tensors_header_as_load_does(exported, tmp_path: Path) -> None:
    """inspect reads weight sizes through the loader's checked header parse: malformed offsets are an ArtifactError
    naming the tensor, not a KeyError or TypeError."""
    from lepton_graph.artifact.commands import inspect_artifact

    path, *_ = exported
    header, sections = read_artifact(path)
    header = {k: v for k, v in header.items() if k not in ("format", "sections")}
    assert "F32" in inspect_artifact(str(path))
    blob = sections["tensors"]
    n = int.from_bytes(blob[:8], "little")
    meta = json.loads(blob[8 : 8 + n])
    name = next(k for k in meta if k != "__metadata__")
    meta[name]["data_offsets"] = "everything"
    head = json.dumps(meta).encode()
    bad = tmp_path / "bad.lgraph"
    write_artifact(bad, header, {**sections, "tensors": len(head).to_bytes(8, "little") + head + blob[8 + n :]})
    with pytest.raises(ArtifactError, match=re.escape(f"tensor '{name}' has malformed data offsets")):
        inspect_artifact(str(bad))


# ------------------------------------------------------------------------------------------- stored GEMM panels


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 70), n=st.integers(0, 100), transposed=st.booleans(), strided=st.booleans())
def test_panels_unpack_to_the_weight_exactly(k: int, n: int, transposed: bool, strided: bool) -> None:
    from lepton_graph.backends.cpu.gemm import pack_weight

    shape = (n, k) if transposed else (k, n)
    w = torch.randn(shape[1], shape[0]).t() if strided else torch.randn(shape)
    words = panels.panel_bytes(pack_weight(w, transposed=transposed, huge_pages=False))
    assert words.numel() == panels.packed_f32_nbytes(k, n) == native._lib().gemm_packed_f32_nbytes(k, n)
    assert torch.equal(panels.unpack(words, k, n, transposed), w)


class TiedHead(nn.Module):
    """A head tied to the embedding: the embedding reads the raw weight, so it must stay raw in the file."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 24)
        self.mlp = nn.Sequential(nn.Linear(24, 40), nn.ReLU(), nn.Linear(40, 24))
        self.head = nn.Linear(24, 50, bias=False)
        self.head.weight = self.emb.weight
        self.proj = nn.Parameter(torch.randn(24, 24))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.relu(self.mlp(self.emb(ids))) @ self.proj)
        return self.head(h)


def _stored_keys(path: Path) -> set[str]:
    _, sections = read_artifact(path)
    return {e["key"] for e in json.loads(sections["call"]).get("panels", [])}


def test_gemm_weights_are_stored_packed_and_read_in_place(tmp_path: Path) -> None:
    """Every weight only native GEMMs read is stored as its packed panels (linear and matmul layouts) and read in
    place at load; a weight something else reads too (a tied embedding) stays raw; both files give the compiled
    model's outputs bit for bit."""
    torch.manual_seed(0)
    model = TiedHead().eval()
    ids = torch.randint(0, 50, (2, 7))
    c = lepton_graph.compile(model)
    ref = c(ids)
    c.export(tmp_path / "p.lgraph")
    with config.patch(artifact_panels=False):
        c.export(tmp_path / "r.lgraph")
    stored = _stored_keys(tmp_path / "p.lgraph")
    assert len(stored) == 3 and _stored_keys(tmp_path / "r.lgraph") == set()
    header, sections = read_artifact(tmp_path / "p.lgraph")
    tensors = {e for e in json.loads(sections["tensors"][8 : 8 + int.from_bytes(sections["tensors"][:8], "little")])}
    assert not stored & tensors and "head.weight" in tensors  # the tied embedding weight stays raw
    p, r = lepton_graph.load(tmp_path / "p.lgraph"), lepton_graph.load(tmp_path / "r.lgraph")
    assert p.report().weights.startswith("3 GEMM weights read in place") and r.report().weights == "packed at load"
    assert torch.equal(p(ids), ref) and torch.equal(r(ids), ref)
    # the panels file is larger only by the panels' zero columns (none when N is a multiple of 32) and alignment
    table = json.loads(sections["call"])["panels"]
    padding = sum(e["nbytes"] - 4 * e["k"] * e["n"] for e in table)
    sizes = [(tmp_path / f).stat().st_size for f in ("p.lgraph", "r.lgraph")]
    assert padding > 0 and sizes[1] - 256 <= sizes[0] <= sizes[1] + padding + 64 * (len(table) + 4) + 256


def test_panels_a_reader_did_not_take_are_unpacked_and_say_so(tmp_path: Path, monkeypatch) -> None:
    """When some reader of a stored weight does not take its panels (another lowering here; no native kernels), the
    loader unpacks them to the weight and lowers again: the outputs are unchanged, the report says why."""
    from lepton_graph.backends import Prepacked

    model, (args, kwargs) = zoo.build("bert_tiny")
    c = lepton_graph.compile(model)
    ref = c(*args, **kwargs)
    path = tmp_path / "b.lgraph"
    c.export(path)
    skipped = sorted(_stored_keys(path))[0]
    take = Prepacked.take
    monkeypatch.setattr(Prepacked, "take", lambda self, key, t: None if key == skipped else take(self, key, t))
    m = lepton_graph.load(path)
    assert m.report().weights.startswith("stored panels unpacked") and f"reads of {skipped!r}" in m.report().weights
    assert _equal(m(*args, **kwargs), ref)
    monkeypatch.setattr(Prepacked, "take", take)
    with config.patch(native=False):
        m = lepton_graph.load(path)
        out = m(*args, **kwargs)
    assert m.report().weights.startswith("stored panels unpacked") and m.report().partitions >= 1
    with torch.no_grad():
        eager = model(*args, **kwargs)
    assert float((out[0] - eager[0]).norm() / eager[0].norm()) < 1e-5


def _rewrite_call(path: Path, out: Path, edit, drop: str | None = None) -> None:
    header, sections = read_artifact(path)
    call = json.loads(sections["call"])
    edit(call)
    sections = {**sections, "call": json.dumps(call).encode()}
    if drop:
        sections.pop(drop)
    write_artifact(out, {k: v for k, v in header.items() if k not in ("format", "sections")}, sections)


@pytest.mark.parametrize(
    ("edit", "drop", "message"),
    [
        (lambda c: c["panels"][0].update(nbytes=c["panels"][0]["nbytes"] - 4), None, "do not fit the panels section"),
        (lambda c: c["panels"][0].update(offset=1 << 40), None, "do not fit the panels section"),
        (lambda c: c["panels"][0].update(offset=2), None, "do not fit the panels section"),
        (lambda c: c["panels"][0].update(k="many"), None, "malformed"),
        (lambda c: c["panels"].append(dict(c["panels"][0])), None, "stored twice"),
        (lambda c: c.update(panels={"a": 1}), None, "panel table is malformed"),
        (lambda c: None, "panels", "no panels section"),
        (lambda c: c["panels"][0].update(n=c["panels"][0]["n"] + 1), None, "do not fit|declares"),
    ],
)
def test_hostile_panel_tables_are_refused(exported, tmp_path: Path, edit, drop, message: str) -> None:
    path, *_ = exported
    assert _stored_keys(path)
    bad = tmp_path / "bad.lgraph"
    _rewrite_call(path, bad, edit, drop)
    with pytest.raises(ArtifactError, match=message):
        lepton_graph.load(bad)
    with pytest.raises(ArtifactError, match=message):
        from lepton_graph.artifact.commands import inspect_artifact

        inspect_artifact(str(bad))


def test_large_sections_are_checked_per_chunk_and_format_1_files_still_load(
    exported, tmp_path: Path, monkeypatch
) -> None:
    """Sections larger than a chunk carry a digest per chunk (checked on every core); a changed byte in any chunk is
    an ArtifactError, as is a malformed chunk list; a format 1 file (one digest per section, no panels) loads."""
    path, args, kwargs, ref = exported
    header, sections = read_artifact(path)
    header = {k: v for k, v in header.items() if k not in ("format", "sections")}
    monkeypatch.setattr(container, "CHUNK", 256)
    chunked = tmp_path / "c.lgraph"
    write_artifact(chunked, header, sections)
    last = read_artifact(chunked)[0]["sections"][-1]
    assert len(last["chunks"]) == (last["length"] + 255) // 256 > 2
    assert _equal(lepton_graph.load(chunked)(*args, **kwargs), ref)
    blob = bytearray(chunked.read_bytes())
    blob[-300] ^= 1  # inside the last section, past its first chunk
    bad = tmp_path / "bad.lgraph"
    bad.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="fails its sha256 check"):
        lepton_graph.load(bad)
    monkeypatch.setattr(container, "CHUNK", 512)  # the reader now expects another number of chunks
    with pytest.raises(ArtifactError, match="malformed chunk digest list"):
        lepton_graph.load(chunked)
    monkeypatch.setattr(container, "CHUNK", 1 << 40)
    monkeypatch.setattr(container, "FORMAT", 1)
    old = tmp_path / "old.lgraph"
    torch.manual_seed(0)
    c = lepton_graph.compile(TwoHeads().eval())
    out = c(*args, **kwargs)
    with config.patch(artifact_panels=False):
        c.export(old)
    monkeypatch.setattr(container, "FORMAT", FORMAT)
    old_header, old_sections = read_artifact(old)
    assert old_header["format"] == 1 and "panels" not in old_sections
    assert not any("chunks" in s for s in old_header["sections"])
    assert _equal(lepton_graph.load(old)(*args, **kwargs), out)


# ----------------------------------------------------------------------------------------------- hot swap


def test_swap_under_concurrent_calls_every_result_is_one_version(tmp_path: Path) -> None:
    """Four threads call while the artifact is swapped five times: no call fails, every result equals one
    version's output exactly (no mix of old and new weights), and after each swap new calls get the new one."""
    paths, x, outs = mlp_versions(tmp_path, 6)
    m = lepton_graph.load(paths[0])

    def swaps() -> None:
        for i, p in enumerate(paths[1:], start=2):
            assert m.swap(p) == i and m.version == i
            assert torch.equal(m(x), outs[i - 1])  # a call after the switch runs the new version

    results = results_while(lambda: m(x), swaps)
    assert len(results) > 20
    seen = {next(i for i, o in enumerate(outs) if torch.equal(r, o)) for r in results}  # StopIteration: a mix
    assert len(seen) >= 2
    assert m.report().path == str(paths[-1])


def test_a_swap_that_does_not_fit_is_refused_and_the_old_version_keeps_serving(tmp_path: Path) -> None:
    import gc
    import weakref

    paths, x, outs = mlp_versions(tmp_path, 2)
    m = lepton_graph.load(paths[0])
    other = tmp_path / "other.lgraph"
    c = lepton_graph.compile(nn.Sequential(nn.Linear(16, 5)).eval())
    c(x)
    c.export(other)
    with pytest.raises(ArtifactError, match=r"refused: output 0 is f32\[8, 5\] where the serving version returns f32"):
        m.swap(other)
    wide = tmp_path / "wide.lgraph"
    c2 = lepton_graph.compile(nn.Sequential(nn.Linear(16, 4)).eval())
    c2(torch.randn(3, 16))
    c2.export(wide)
    with pytest.raises(ArtifactError, match=r"input 0 is float32\[3, 16\] on cpu where the serving version takes "):
        m.swap(wide)
    bad = tmp_path / "bad.lgraph"
    blob = bytearray(paths[1].read_bytes())
    blob[-100] ^= 1
    bad.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="sha256"):
        m.swap(bad)
    assert m.version == 1 and torch.equal(m(x), outs[0])
    # the old version is freed once nothing calls it
    old = weakref.ref(m._v)
    m.swap(lepton_graph.load(paths[1]))
    gc.collect()
    assert old() is None and torch.equal(m(x), outs[1]) and m.version == 2


def test_concurrent_swaps_serialise(tmp_path: Path) -> None:
    """Swaps started at once (a second while the first is still loading and warming) queue: each completes, the
    version numbers are 2..n+1 in some order, and the model serves the last one switched in."""
    import threading

    paths, x, outs = mlp_versions(tmp_path, 5)
    m = lepton_graph.load(paths[0])
    numbers: dict[int, int] = {}

    def swap(i: int) -> None:
        numbers[i] = m.swap(paths[i])

    threads = [threading.Thread(target=swap, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers.values()) == [2, 3, 4, 5] and m.version == 5
    last = max(numbers, key=numbers.__getitem__)
    assert torch.equal(m(x), outs[last])


@pytest.mark.parametrize("name", ["mlp_tiny", "bert_tiny"])
def test_bf16_models_round_trip_bit_for_bit(name: str, tmp_path: Path) -> None:
    """precision="bf16" (bf16 GEMM weights where the CPU has AVX512_BF16, fp32 elsewhere): the file keeps the raw
    weights (bf16 panels are not stored) and the loaded model runs the same precision, bit for bit."""
    model, (args, kwargs) = zoo.build(name)
    c = lepton_graph.compile(model, precision="bf16")
    ref = c(*args, **kwargs)
    path = tmp_path / f"{name}.lgraph"
    c.export(path)
    loaded = lepton_graph.load(path)
    assert _equal(loaded(*args, **kwargs), ref)
    assert loaded.report().as_dict()["precision"] == "bf16"
    assert _stored_keys(path) == set() and loaded.report().weights == "packed at load"


@pytest.mark.parametrize("scheme", ["int8-dynamic", "int8-static", "int8-weight", "int4-weight"])
def test_quantized_models_round_trip_bit_for_bit(scheme: str, tmp_path: Path) -> None:
    """Every quantization scheme's artifact (int8 / int4 weights as compiled, static activation scales) gives the
    compiled model's outputs bit for bit, and is smaller than the fp32 weights."""
    model, (args, kwargs) = zoo.build("mlp_tiny")
    options: dict = {"quantize": scheme}
    if scheme == "int8-static":
        options["calibration"] = [(torch.randn_like(args[0]),) for _ in range(4)]
    c = lepton_graph.compile(model, **options)
    ref = c(*args, **kwargs)
    path = tmp_path / "q.lgraph"
    size = c.export(path)
    assert _equal(lepton_graph.load(path)(*args, **kwargs), ref)
    fp32 = sum(p.numel() * 4 for p in model.parameters())
    assert size < fp32
