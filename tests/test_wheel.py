"""The installed product, not the checkout: a wheel built from this tree, installed in a fresh virtualenv, run from a
folder outside the checkout. `lepton-graph bench` must be there (before the harness moved into the package, the
subcommand existed only inside a checkout and silently vanished from an installed wheel).

The new venv gets the test environment's site-packages as a plain path entry (for torch and the other
dependencies, without reinstalling gigabytes); such an entry's .pth files are not processed, so this checkout's
editable install is not active there: `import lepton_graph` finds the wheel's copy, which the test asserts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    wheel = next((tmp / "dist").glob("lepton_graph-*.whl"))
    env = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    purelib = Path(
        subprocess.run(
            [env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (purelib / "deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return env


def _run(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_wheel_is_what_runs(installed: Path, tmp_path: Path) -> None:
    r = _run(
        installed,
        "python",
        "-c",
        "import lepton_graph, lepton_graph.bench, lepton_graph._C; print(lepton_graph.__file__)",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(installed), r.stdout
    assert not Path(r.stdout.strip()).is_relative_to(ROOT)


def test_lepton_graph_bench_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = _run(
        installed,
        "lepton-graph",
        "bench",
        "--models",
        "mlp_tiny",
        "--backends",
        "eager,lepton",
        "--rounds",
        "2",
        "--quick",
        "--in-process",
        "--no-progress",
        "--threads",
        "1",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| mlp_tiny |" in r.stdout
    recs = {rec["backend"]: rec for rec in json.loads(out.read_text())["results"]}
    assert recs["lepton"]["status"] == "ok" and recs["lepton"]["accuracy"]["max_rel_err"] <= 1e-4
    assert recs["lepton"]["vs_eager"] > 0
