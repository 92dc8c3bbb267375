"""The long form of the artifact fuzz test (tests/runtime/test_artifact.py runs 40 cases in CI): flip bytes in, or
truncate, a real artifact many times; every damaged file must be refused with an ArtifactError or (a byte of the
header's free text) load and give the same outputs. Anything else (another exception, a crash, a different answer)
is a failure. Writes a table of outcomes per model.

    python bench/artifact_fuzz.py --models resnet_tiny,bert_tiny --cases 400 --md bench/results/artifact_fuzz.md
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import torch


def _same(a: object, b: object) -> bool:
    la, lb = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
    return len(la) == len(lb) and all(
        torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y for x, y in zip(la, lb, strict=True)
    )


def fuzz(name: str, cases: int, seed: int, workdir: Path) -> dict:
    import lepton_graph
    from lepton_graph import ArtifactError, zoo
    from lepton_graph.artifact.container import read_artifact

    model, (args, kwargs) = zoo.build(name)
    c = lepton_graph.compile(model)
    ref = c(*args, **kwargs)
    path = workdir / f"{name}.lgraph"
    c.export(path)
    data = path.read_bytes()
    header, _ = read_artifact(path)
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    for i in range(cases):
        blob = bytearray(data)
        if rng.random() < 0.2:
            blob = blob[: rng.randrange(len(blob))]
            kind = "truncated"
        else:
            for _ in range(rng.randint(1, 4)):
                blob[rng.randrange(len(blob))] ^= rng.randint(1, 255)
            kind = "flipped"
        bad = workdir / "bad.lgraph"
        bad.write_bytes(bytes(blob))
        try:
            m = lepton_graph.load(bad)
            ok = _same(m(*args, **kwargs), ref)
            outcomes[f"{kind}: loaded, same outputs" if ok else f"{kind}: WRONG OUTPUTS"] += 1
            if not ok:
                failures.append(f"case {i}: {kind}, loaded with different outputs")
        except ArtifactError:
            outcomes[f"{kind}: ArtifactError"] += 1
        except Exception as e:  # noqa: BLE001 - anything else is what the fuzz is looking for
            outcomes[f"{kind}: {type(e).__name__}"] += 1
            failures.append(f"case {i}: {kind}: {traceback.format_exception_only(e)[-1].strip()[:200]}")
    return {"model": name, "bytes": len(data), "sections": len(header["sections"]), "outcomes": outcomes,
            "failures": failures}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet_tiny,bert_tiny")
    p.add_argument("--cases", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        rows = [fuzz(m, ns.cases, ns.seed, Path(d)) for m in ns.models.split(",")]
    lines = [
        f"## artifact fuzz, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; torch {torch.__version__}; commit {git_commit()}. {ns.cases} damaged files per "
        f"model (20% truncated at a random byte, else 1-4 random bytes flipped), seed {ns.seed}; "
        f"{time.perf_counter() - t0:.0f} s.",
        "",
        "| model | file bytes | sections | outcome | cases |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        for outcome, n in sorted(r["outcomes"].items()):
            lines.append(f"| {r['model']} | {r['bytes']} | {r['sections']} | {outcome} | {n} |")
    failures = [f for r in rows for f in r["failures"]]
    lines += ["", f"Failures (anything but ArtifactError or identical outputs): {len(failures)}"]
    lines += [f"- {f}" for f in failures[:20]]
    emit_table(lines, ns.md)
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
