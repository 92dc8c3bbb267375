"""How the checkout meets Python's import system: nothing in it may shadow another distribution's module.

A folder of the repository is imported by name whenever its parent is on ``sys.path``: Python started in the root
(``python``, ``python -m ...``) puts the root first, ``python bench/x.py`` puts bench/ first. transformers 5.x
imports the PyPI distribution ``kernels``; our top-level ``kernels/`` once had an ``__init__.py`` and won, so every
transformers model failed when built from a shell in the root. The rules: only ``lepton_graph/`` and ``tests/``
are regular packages at the root (a folder without ``__init__.py`` is a namespace portion, which never wins over an
installed package), the install puts no checkout folder on ``sys.path``, no module name in a folder that Python
puts first is a top-level module of an installed distribution, and test modules are imported as ``tests.*``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folders that Python itself puts first on sys.path: the root (a shell or `python -m` there), bench/ (its scripts)
SCRIPT_DIRS = (ROOT, ROOT / "bench")


def _module_names(folder: Path) -> dict[str, Path]:
    """Names `import NAME` would take from ``folder`` as a regular package or a module (not namespace portions)."""
    names = {}
    for p in folder.iterdir():
        if p.is_dir() and p.name.isidentifier() and (p / "__init__.py").is_file():
            names[p.name] = p
        elif p.suffix == ".py" and p.stem.isidentifier():
            names[p.stem] = p
    return names


def test_only_lepton_graph_and_tests_are_regular_packages_at_the_root() -> None:
    # tests/ must be one: pytest names a test module after the package folders above it, and without
    # tests/__init__.py, tests/kernels/ became the top-level `kernels` for the whole session (see the last test).
    # Its own name is checked against the installed distributions by the test below.
    regular = sorted(_module_names(ROOT))
    assert regular == ["lepton_graph", "tests"], (
        f"{regular}: a root folder with __init__.py (or a root .py file) is imported by name from a shell in the "
        "root and shadows any installed distribution of that name; keep it a namespace portion (kernels/README.md)"
    )


def test_no_script_folder_module_is_named_like_an_installed_distribution() -> None:
    installed = importlib.metadata.packages_distributions()
    clashes = {
        f"{path.relative_to(ROOT)}: {name} (from {installed[name]})"
        for folder in SCRIPT_DIRS
        for name, path in _module_names(folder).items()
        if name in installed and name != "lepton_graph"
    }
    assert not clashes, f"these would shadow installed distributions: {sorted(clashes)}"


def test_the_install_puts_no_checkout_folder_on_sys_path() -> None:
    # The editable install serves lepton_graph and lepton_graph.kernels through its import hook alone; a .pth entry
    # for the root (or its parent) would make every folder of the checkout, and its siblings, importable everywhere.
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print('\\n'.join(sys.path[1:]))"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    inside = [p for p in out if p and (Path(p).resolve() == ROOT or ROOT.is_relative_to(Path(p).resolve()))]
    assert not inside, f"sys.path holds the checkout or a folder above it: {inside}"


def test_kernels_package_maps_to_top_level_dir() -> None:
    kernels = importlib.import_module("lepton_graph.kernels")
    assert ROOT / "kernels" in [Path(p).resolve() for p in kernels.__path__]
    assert not (ROOT / "kernels" / "__init__.py").exists()


def test_transformers_model_builds_in_a_shell_started_in_the_root() -> None:
    """The failure as a user met it: `python` in the repository root, then a transformers model."""
    script = textwrap.dedent("""
        import importlib.metadata, importlib.util, json, sys
        from pathlib import Path
        import torch, transformers
        import lepton_graph.kernels

        cfg = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=37)
        model = transformers.BertModel(cfg).eval()
        with torch.no_grad():
            out = model(torch.randint(0, 99, (2, 7))).last_hidden_state
        spec = importlib.util.find_spec("kernels")
        try:
            dist = importlib.metadata.distribution("kernels")
            dist_dir = str(Path(dist.locate_file("kernels")).resolve())
        except importlib.metadata.PackageNotFoundError:
            dist_dir = None
        print(json.dumps({
            "shape": list(out.shape), "finite": bool(torch.isfinite(out).all()),
            "ours": [str(Path(p).resolve()) for p in lepton_graph.kernels.__path__],
            "top_origin": spec and spec.origin, "top_path": spec and list(spec.submodule_search_locations or []),
            "dist_dir": dist_dir, "sys_path0": sys.path[0],
        }))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["sys_path0"] == "", "the subprocess must put its working directory (the root) first, as a shell does"
    assert r["shape"] == [2, 7, 32] and r["finite"]
    assert str(ROOT / "kernels") in r["ours"]
    ours = str(ROOT / "kernels")
    if r["dist_dir"] is not None:  # an installed `kernels` distribution (transformers >= 5 needs one): it wins
        assert r["top_origin"] and Path(r["top_origin"]).resolve().parent == Path(r["dist_dir"]), r
        assert ours not in r["top_path"], r
    else:  # none installed: at most an empty namespace portion of ours, never a module with code of ours
        assert r["top_origin"] in (None, "namespace") or not r["top_origin"].startswith(ours), r


def test_test_modules_are_imported_under_the_tests_package() -> None:
    # pytest names a test module after the folders above it that are packages: with no tests/__init__.py,
    # tests/kernels/ was imported as the top-level `kernels` and shadowed the distribution for the whole session.
    stray = sorted(
        name
        for name, mod in list(sys.modules.items())
        if (f := getattr(mod, "__file__", None))
        and Path(f).resolve().is_relative_to(ROOT / "tests")
        and name.split(".")[0] != "tests"
    )
    assert not stray, f"test modules imported under top-level names: {stray}"
