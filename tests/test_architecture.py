"""Architecture rules (STYLE R1, R8, R15), checked on the source of every module in lepton_graph/.

- ``ir/`` imports nothing from lepton_graph outside ``ir/`` (the IR is the hub, it depends on no stage);
- each stage imports only the stages ``STAGE_IMPORTS`` allows it (the one-way flow of ARCHITECTURE.md);
- only ``frontend/`` touches ``torch.export`` / ``torch.fx`` / ``torch._dynamo`` (import or attribute use), and
  ``bench/``, whose peers are other compilers;
- only ``backends/`` imports the native extension ``lepton_graph._C`` or the Triton ``lepton_graph.kernels``;
- no ``os.environ`` / ``os.getenv`` outside ``lepton_graph/config.py`` (the one config table);
- no file over the hard cap of 800 code lines.

Deliberate exceptions live in ``EXCEPTIONS`` with their reason; remove an entry once its cause is gone.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "lepton_graph"
CAPTURE_MODULES = ("torch.export", "torch.fx", "torch._dynamo")
# bench/ drives the peers (torch.compile, ONNX export), which are other compilers' front ends, not ours
CAPTURE_STAGES = ("frontend", "bench")
NATIVE_MODULES = ("lepton_graph._C", "lepton_graph.kernels")
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
MAX_CODE_LINES = 800

# Which stages a stage may import (ARCHITECTURE.md: frontend -> ir <- passes, backends -> runtime, api on top; the
# partition plan the passes hand to lowering is IR data, ir/plan.py, and the dispatch code is runtime/codegen.py).
# Modules at the package top (api, compiler, cli, report, zoo, ...) and bench/ sit on top and may import anything;
# config, log and errors are leaves every stage may use.
LEAVES = {"config", "log", "errors"}
STAGE_IMPORTS: dict[str, set[str]] = {
    "ir": set(),
    "frontend": {"ir"},
    "passes": {"ir"},
    "backends": {"ir", "runtime"},
    "runtime": {"ir"},
}

# (path relative to lepton_graph/, rule) -> why it is allowed for now.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("bench/peers.py", "environ"): "Inductor reads its cache location only from TORCHINDUCTOR_CACHE_DIR: the "
    "inductor peer gets a fresh (cold) cache per model",
    ("bench/harness.py", "environ"): "restores TORCHINDUCTOR_CACHE_DIR after a run (the inductor peer sets it)",
}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _module_name(rel: Path) -> str:
    parts = ("lepton_graph", *rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) for every import; ``from a import b`` yields both ``a`` and ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _code_lines(source: str) -> int:
    """Lines holding code: no blank lines, comments or docstrings."""
    lines: set[int] = set()
    prev = tokenize.INDENT
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            if tok.type != tokenize.NL:
                prev = tok.type
            continue
        is_docstring = tok.type == tokenize.STRING and prev in (tokenize.INDENT, tokenize.NEWLINE, tokenize.DEDENT)
        prev = tok.type
        if not is_docstring:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def violations(rel: Path, source: str, exceptions: dict[tuple[str, str], str] = EXCEPTIONS) -> list[str]:
    """Every rule broken by one module, given its path relative to lepton_graph/."""
    stage = rel.parts[0] if len(rel.parts) > 1 else ""
    module = _module_name(rel)
    tree = ast.parse(source, filename=str(rel))
    found: list[tuple[str, int, str]] = []
    for line, name in _imported(tree, module, rel.name == "__init__.py"):
        if stage == "ir" and _under(name, ("lepton_graph",)) and not _under(name, ("lepton_graph.ir",)):
            found.append(("ir", line, f"ir/ imports {name}"))
        elif stage in STAGE_IMPORTS and _under(name, ("lepton_graph",)) and name.count(".") >= 1:
            target = name.split(".")[1]
            allowed = STAGE_IMPORTS[stage] | LEAVES | {stage, "_C", "kernels"}
            if target not in allowed and ((PACKAGE_DIR / target).is_dir() or (PACKAGE_DIR / f"{target}.py").exists()):
                found.append(("stages", line, f"{stage}/ imports {name} (allowed: {sorted(STAGE_IMPORTS[stage])})"))
        if stage not in CAPTURE_STAGES and _under(name, CAPTURE_MODULES):
            found.append(("capture", line, f"imports {name} outside frontend/"))
        if stage != "backends" and _under(name, NATIVE_MODULES):
            found.append(("native", line, f"imports {name} outside backends/"))
        if rel.as_posix() != "config.py" and name in {f"os.{n}" for n in ENV_NAMES}:
            found.append(("environ", line, f"imports {name} outside config.py"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = _dotted(node)
        if stage not in CAPTURE_STAGES and name in CAPTURE_MODULES:
            found.append(("capture", node.lineno, f"uses {name} outside frontend/"))
        if (
            rel.as_posix() != "config.py"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ENV_NAMES
        ):
            found.append(("environ", node.lineno, f"uses os.{node.attr} outside config.py (add an Option)"))
    if (n := _code_lines(source)) > MAX_CODE_LINES:
        found.append(("size", 1, f"{n} code lines > {MAX_CODE_LINES}"))
    return [
        f"lepton_graph/{rel.as_posix()}:{line}: {msg}"
        for rule, line, msg in found
        if (rel.as_posix(), rule) not in exceptions
    ]


def _modules() -> list[Path]:
    return sorted(p.relative_to(PACKAGE_DIR) for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_package_follows_architecture_rules() -> None:
    modules = _modules()
    assert len(modules) > 5, f"expected the lepton_graph sources under {PACKAGE_DIR}"
    broken = [v for rel in modules for v in violations(rel, rel_source(rel))]
    assert not broken, "architecture rules broken:\n" + "\n".join(broken)


def test_exceptions_are_still_needed() -> None:
    for (path, rule), why in EXCEPTIONS.items():
        others = {key: reason for key, reason in EXCEPTIONS.items() if key != (path, rule)}
        exists = (PACKAGE_DIR / path).exists()
        assert exists and violations(Path(path), rel_source(Path(path)), others), (
            f"EXCEPTIONS entry {(path, rule)} ({why}) no longer applies: remove it"
        )


def rel_source(rel: Path) -> str:
    return (PACKAGE_DIR / rel).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("ir/graph.py", "from ..passes import fuse\n", "ir/ imports lepton_graph.passes"),
        ("ir/graph.py", "from .. import config\n", "ir/ imports lepton_graph"),
        ("ir/defs/x.py", "import lepton_graph.runtime\n", "ir/ imports lepton_graph.runtime"),
        ("passes/fuse.py", "import torch.fx as fx\n", "imports torch.fx outside frontend/"),
        ("passes/fuse.py", "from torch import _dynamo\n", "imports torch._dynamo outside frontend/"),
        ("runtime/x.py", "import torch\ntorch.export.export(m, ())\n", "uses torch.export outside frontend/"),
        ("runtime/x.py", "from .. import _C\n", "imports lepton_graph._C outside backends/"),
        ("api.py", "from lepton_graph.kernels import matmul\n", "imports lepton_graph.kernels outside backends/"),
        ("log.py", "import os\nx = os.environ['LEPTON_LOG']\n", "uses os.environ outside config.py"),
        ("log.py", "from os import getenv\n", "imports os.getenv outside config.py"),
        ("zoo.py", "x = 1\n" * 801, "801 code lines > 800"),
        ("frontend/dynamo.py", "from ..runtime.weights import WeightWatch\n", "frontend/ imports lepton_graph.runtime"),
        ("passes/fuse.py", "from ..backends import LowerOptions\n", "passes/ imports lepton_graph.backends"),
        ("runtime/executor.py", "from ..backends.cpu import native\n", "runtime/ imports lepton_graph.backends"),
        ("backends/cpu/gemm.py", "from ...passes.fuse import fuse\n", "backends/ imports lepton_graph.passes"),
        ("passes/fuse.py", "from .. import api\n", "passes/ imports lepton_graph.api"),
    ],
)
def test_rules_catch_violations(path: str, source: str, expected: str) -> None:
    assert any(expected in v for v in violations(Path(path), source)), violations(Path(path), source)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("ir/graph.py", "from .dtype import DType\nfrom . import ops\nimport torch\n"),
        ("ir/defs/x.py", "from ..registry import register_op\nimport torch\ny = torch._C._nn.gelu\n"),
        ("frontend/export.py", "import torch.fx as fx\nfrom torch.export import export\n"),
        ("backends/cpu/native.py", "from lepton_graph import _C\nfrom ... import kernels\n"),
        ("config.py", "import os\nx = os.environ.get('LEPTON_LOG')\n"),
        ("backends/fallback.py", "from ..ir.plan import Partition\nfrom ..runtime.codegen import inline_fused\n"),
        ("backends/cpu/__init__.py", "from ...runtime import profile\nfrom ...config import config\n"),
        ("api.py", "from .runtime.weights import WeightWatch\nfrom .backends import default_backends\n"),
        ("zoo.py", '"""doc\n' + "line\n" * 900 + '"""\n# comment\n' * 1 + "x = 1\n"),
    ],
)
def test_rules_allow_the_intended_edges(path: str, source: str) -> None:
    assert violations(Path(path), source) == []
