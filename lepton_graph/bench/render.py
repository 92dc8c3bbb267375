"""Rendering a bench result: the markdown tables, the notes, and a chart of speed vs eager."""

from __future__ import annotations

import math
from typing import Any

from .machine import _load_warning, describe_machine


def _fmt_ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _fmt_err(rec: dict[str, Any], key: str = "max_rel_err") -> str:
    errs = [rec.get(k, {}).get(key) for k in ("accuracy", "warm_accuracy")]
    if not any(k in rec for k in ("accuracy", "warm_accuracy")):
        return "–"
    if any(e is None for e in errs if e is not None) or all(e is None for e in errs):
        return "n/a"
    vals = [e for e in errs if e is not None]
    return "nan" if any(math.isnan(e) for e in vals) else f"{max(vals):.1e}"


def _cell_error(rec: dict[str, Any], width: int = 70) -> str:
    msg = " ".join(str(rec.get("error")).split()).replace("|", "/")
    return "error: " + (msg if len(msg) <= width else msg[: width - 1] + "…")


def render_markdown(result: dict[str, Any]) -> str:
    meta, recs = result["meta"], result["results"]
    s = meta["settings"]
    backends = meta["backends"]
    lines = [
        f"## lepton-graph bench, {meta['started']}",
        "",
        f"Machine: {describe_machine(meta)}. Commit {meta.get('git_commit') or '?'}.",
        f"{s['rounds']} interleaved rounds of ~{s['batch_s']} s per backend; median ms per call, "
        "(speed vs eager from the same run, > 1 = faster).",
        *_load_warning(meta),
        "",
        "| model | " + " | ".join(backends) + " |",
        "|---|" + "---|" * len(backends),
    ]
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for r in recs:
        by_model.setdefault(r["model"], {})[r["backend"]] = r
    for model, row in by_model.items():
        cells = []
        for b in backends:
            r = row.get(b, {})
            if r.get("status") != "ok" or not r.get("median_ms"):
                cells.append(_cell_error(r, 40) if r.get("error") else "–")
            elif b == "eager" or r.get("vs_eager") is None:
                cells.append(_fmt_ms(r["median_ms"]))
            else:
                cells.append(f"{_fmt_ms(r['median_ms'])} ({r['vs_eager']:.2f}x)")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    anchors = any("anchor_median_ms" in r for r in recs)
    lines += [
        "",
        "| model | backend | median ms | p90 ms | vs eager | paired | compile s | max rel err | rel L2 "
        "| calls |" + (" anchor ms (vs eager) |" if anchors else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if anchors else ""),
    ]
    for r in recs:
        if r.get("status") != "ok" and not r.get("median_ms"):
            empty = " |" * (8 + anchors)
            lines.append(f"| {r['model']} | {r['backend']} | {_cell_error(r)} |{empty}")
            continue
        ratio = "–" if r.get("vs_eager") is None else f"{r['vs_eager']:.2f}x"
        paired = "–" if r.get("vs_eager_paired") is None else f"{r['vs_eager_paired']:.2f}x"
        anchor = ""
        if anchors:
            a, ax = r.get("anchor_median_ms"), r.get("anchor_vs_eager")
            anchor = " – |" if a is None else f" {_fmt_ms(a)}" + (f" ({ax:.2f}x) |" if ax else " |")
        lines.append(
            f"| {r['model']} | {r['backend']} | {_fmt_ms(r.get('median_ms'))} | {_fmt_ms(r.get('p90_ms'))} "
            f"| {ratio} | {paired} | {r.get('compile_s', 0):.2f} | {_fmt_err(r)} | {_fmt_err(r, 'rel_l2')} "
            f"| {r.get('calls', 0)} |" + anchor
        )
    if anchors:
        lines += [
            "",
            f"Anchors: {result['meta'].get('anchors')} (another run: compare the ratios, not the ms; "
            "anchor BERT had no attention_mask, anchor GPT-2 ran with use_cache=False: "
            "bert_b1_s128_ids and gpt2_b1_s128_nocache are those inputs).",
        ]
    lines += _render_reports(recs) + _render_notes(recs, s["rounds"])
    return "\n".join(lines) + "\n"


def _render_reports(recs: list[dict[str, Any]]) -> list[str]:
    reps = [r for r in recs if r["backend"] == "lepton" and (r.get("report") or r.get("report_error"))]
    if not reps:
        return []
    lines = [
        "",
        "lepton compile report:",
        "",
        "| model | partitions | native nodes | fallback nodes | kernels/call | compile s | fallback ops |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reps:
        rep = r.get("report") or {}
        if not isinstance(rep, dict):
            rep = {}
        ops = rep.get("fallback_ops") or {}
        if isinstance(ops, dict):
            ops_s = ", ".join(f"{k}×{v}" for k, v in list(ops.items())[:6]) + (" …" if len(ops) > 6 else "")
        else:
            ops_s = ", ".join(map(str, list(ops)[:6])) + (" …" if len(ops) > 6 else "")
        cs = rep.get("compile_s")
        lines.append(
            f"| {r['model']} | {rep.get('partitions', '?')} | {rep.get('native_nodes', '?')} | "
            f"{rep.get('fallback_nodes', '?')} | {rep.get('kernels_per_call', '?')} | "
            f"{cs if not isinstance(cs, float) else f'{cs:.2f}'} | "
            f"{ops_s or r.get('report_error', '')} |"
        )
    return lines


def _render_notes(recs: list[dict[str, Any]], rounds: int) -> list[str]:
    notes = []
    for r in recs:
        for key in ("accuracy", "warm_accuracy"):
            note = (r.get(key) or {}).get("note")
            if note:
                notes.append(f"- {r['model']} / {r['backend']}: {note}")
        if r.get("model_unchanged") is False and r["backend"] == "eager":
            notes.append(f"- {r['model']}: the model's output changed during the run (a backend mutated it)")
        timed_s = (r.get("mean_ms") or 0.0) * r.get("calls", 0) / 1e3
        if r.get("isolated") and r.get("foreign_cpu_s") and r["foreign_cpu_s"] > 0.1 * timed_s:
            notes.append(
                f"- {r['model']} / {r['backend']}: other processes used {r['foreign_cpu_s']:.1f} CPU s "
                f"during its {timed_s:.0f} s of timed calls: its numbers are disturbed"
            )
        elif (
            not r.get("isolated")
            and r.get("foreign_cpu_s")
            and r["backend"] == "eager"
            and r["foreign_cpu_s"] > 0.1 * r.get("timing_wall_s", 0)
        ):
            notes.append(
                f"- {r['model']}: other processes used {r['foreign_cpu_s']:.1f} CPU s during its "
                f"{r['timing_wall_s']:.0f} s of timing: its numbers are disturbed"
            )
        if r["backend"] == "eager" and r.get("rounds_done", rounds) < rounds:
            notes.append(f"- {r['model']}: time budget spent after {r['rounds_done']} rounds")
        if r["backend"].startswith("lepton") and str(r.get("device", "cpu")).startswith("cuda"):
            notes.append(
                f"- {r['model']} / {r['backend']}: no CUDA lowering yet: the optimised graph ran through "
                "torch on the GPU"
            )
        if r.get("status") == "error" and r.get("median_ms"):
            notes.append(f"- {r['model']} / {r['backend']}: failed after {r.get('rounds')} rounds: {r['error']}")
    return (["", "Notes:", *sorted(set(notes))]) if notes else []


def paired_ratios(rec: dict[str, Any], eager: dict[str, Any]) -> list[float]:
    """Per round: eager's round median / this backend's round median (> 1 = faster), the rounds both ran."""
    return [
        e / b for e, b in zip(eager.get("round_median_ms") or [], rec.get("round_median_ms") or [], strict=False) if b
    ]


def plot(result: dict[str, Any], path: str) -> None:
    """Speed vs eager per model (groups) and backend (bars): the median of the per-round ratios, error bars from
    the rounds' 10th to 90th percentile. Needs matplotlib (the ``bench`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("--plot needs matplotlib: pip install 'lepton_graph[bench]'") from e
    import statistics

    recs = result["results"]
    models = list(dict.fromkeys(r["model"] for r in recs))
    backends = [b for b in result["meta"]["backends"] if b != "eager"]
    eager = {r["model"]: r for r in recs if r["backend"] == "eager"}
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 2.0 + 0.35 * len(models) * max(1, len(backends)))), 4.5))
    width = 0.8 / max(1, len(backends))
    for j, b in enumerate(backends):
        xs, ys, lo, hi = [], [], [], []
        for i, m in enumerate(models):
            rec = next((r for r in recs if r["model"] == m and r["backend"] == b), None)
            ratios = sorted(paired_ratios(rec, eager[m])) if rec and m in eager else []
            if not ratios:
                continue
            mid = statistics.median(ratios)
            q = statistics.quantiles(ratios, n=10) if len(ratios) > 1 else [mid] * 9
            xs.append(i + (j - (len(backends) - 1) / 2) * width)
            ys.append(mid)
            lo.append(max(0.0, mid - q[0]))
            hi.append(max(0.0, q[-1] - mid))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=b)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel("speed vs eager (x, > 1 = faster)")
    machine = result["meta"]["machine"]
    ax.set_title(
        f"lepton-graph bench, {result['meta']['started'][:10]}: {machine.get('cpu_model', '?')}, "
        f"{', '.join(f for f in machine.get('isa', []) if f in ('avx2', 'avx512f', 'avx512_vnni'))}",
        fontsize=9,
    )
    ax.legend(fontsize=8, ncols=min(4, max(1, len(backends))))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
