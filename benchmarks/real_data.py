"""Every method that reads a precomputed-flow release, on the real SMIC part of the MEGC2019 release.

    python benchmarks/real_data.py                      # quick profiles, seeds 0 1 2
    python benchmarks/real_data.py --seeds 0 --only htnet:base
    python benchmarks/real_data.py --report-only        # rewrite the outputs from real_data.json

Runs a full LOSO (16 subjects, 164 clips) per method, variant and seed with the `quick` profile
(its `inputs.flow-release` section: set by the rules of docs/protocols.md before any run) and
writes:

* ``benchmarks/real_data.{json,md}``: per-fold CPU and wall time, the LOSO wall time and the
  extrapolation to a full MEGC2019 composite LOSO (442 clips, 68 subjects) on 2 cores;
* the SMIC table in each method's doc, between ``<!-- real-data-results -->`` markers.

This is the SMIC-only protocol (its own, not the papers'): ``docs/results.md`` is written by
``benchmarks/composite.py`` from the composite runs and shows these figures only as dated history.

Finished folds are reused (the run folders under ``--cache-dir``), so an interrupted run resumes.
The data are found with ``--data-root``, else under ``$MER_SHARED`` (default: ``../shared`` beside
the repository) as ``data/megc2019-flow-smic``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from mercore.catalogue import read_catalogue
from mercore.compare import compare
from mercore.evaluation.results import SeedsResult
from mercore.io import atomic_write_text
from mercore.reporting.html import load_run
from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec
from mercore.shared import shared_dir

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "docs"
ENTRIES = ["ststnet:base", "ststnet:pt", "htnet:base", "htnet:pt", "ahmsanet:regions", "rrmfnet:base",
           "rrmfnet:pt", "dfrnet:full"]
#: the MEGC2019 composite: 442 clips of 68 subjects; a LOSO fold trains on the other 67 subjects
COMPOSITE_FOLDS, COMPOSITE_CLIPS = 68, 442
BUDGET_MINUTES = 40
MARKER = re.compile(r"<!-- real-data-results -->.*?<!-- /real-data-results -->", re.S)


def release_setup(data_root: Path | None, workers: str) -> tuple[Path, int | str]:
    """The release folder (``--data-root``, else under ``$MER_SHARED``; exits when it is not there) and
    ``--workers`` as :func:`measure` takes it; leaves this process one torch thread, as the recorded timings had."""
    data_root = data_root or shared_dir() / "data" / "megc2019-flow-smic"
    if not (data_root / "labels.csv").is_file():
        raise SystemExit(f"no flow release at {data_root} (labels.csv missing): pass --data-root or set MER_SHARED")
    torch.set_num_threads(1)
    return data_root, int(workers) if str(workers).isdigit() else workers


def measure(entry: str, seed: int, data_root: Path, cache_dir: Path, workers: int | str,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One LOSO run; its scores, the leaky audit and the time per fold."""
    method, _, variant = entry.partition(":")
    start = time.perf_counter()
    result = run(RunSpec(method, variant=variant or None, dataset="megc2019-flow", data_root=data_root, profile="quick",
                         overrides=overrides or {}, seed=seed),
                 ExecutionOptions(workers=workers, cache_dir=cache_dir, progress=False, tracking=False))
    wall = time.perf_counter() - start
    leaky = result.leaky_scores()
    folds = result.folds
    return {
        "method": method, "variant": result.variant, "seed": seed, **result.metrics,
        "baseline_uf1": result.baseline["uf1"], "baseline_uar": result.baseline["uar"],
        "leaky_uf1": leaky.uf1 if leaky else None, "leaky_uar": leaky.uar if leaky else None,
        "folds": len(folds), "samples": sum(len(f.keys) for f in folds),
        "fold_cpu_s": statistics.mean(f.cpu_seconds for f in folds),
        "fold_wall_s": statistics.mean(f.seconds for f in folds),
        "n_train": statistics.mean(f.n_train for f in folds),
        "loso_wall_s": wall if result.reused_folds < len(folds) else None, "workers": workers,
        "run_folder": result.run_dir.name,
        "environment": result.environment,
    }


def composite_minutes(fold_cpu_s: float, n_train: float, processes: int = 2) -> float:
    """A composite LOSO on ``processes`` cores: training time is linear in the training set."""
    per_fold = fold_cpu_s * (COMPOSITE_CLIPS * (1 - 1 / COMPOSITE_FOLDS)) / n_train
    return per_fold * COMPOSITE_FOLDS / processes / 60


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def grouped(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (ENTRIES.index(f"{r['method']}:{r['variant']}")
                                        if f"{r['method']}:{r['variant']}" in ENTRIES else 99, r["seed"])):
        out.setdefault((r["method"], r["variant"]), []).append(r)
    return out


def paper_smic(method: str, variant: str, catalogue: dict[str, Any]) -> dict[str, Any] | None:
    for e in (catalogue.get(method) or {}).get("reported") or []:
        if e.get("task") == "megc3" and e.get("dataset") == "smic" and e.get("variant") in (None, variant):
            return e
    return None


def results_table(runs: list[dict[str, Any]], catalogue: dict[str, Any], methods: set[str] | None = None) -> str:
    lines = ["| method | variant | seeds | UF1 (mean ± std) | UAR (mean ± std) | UF1 per seed | majority UF1 / UAR "
             "| paper SMIC UF1 / UAR | LOSO wall (2 cores) |", "|---|---|---|---|---|---|---|---|---|"]
    for (method, variant), rs in grouped(runs).items():
        if methods and method not in methods:
            continue
        paper = paper_smic(method, variant, catalogue)
        paper_cell = f"{paper['uf1']} / {paper['uar']} ({paper['source']})" if paper else "not printed"
        walls = [r["loso_wall_s"] for r in rs if r["loso_wall_s"]]
        wall = f"{statistics.mean(walls) / 60:.1f} min" if walls else "-"
        per_seed = ", ".join(format(r["uf1"], ".3f") for r in rs)
        lines.append(f"| {method} | {variant} | {len(rs)} | {_mean_std([r['uf1'] for r in rs])} | "
                     f"{_mean_std([r['uar'] for r in rs])} | {per_seed} | "
                     f"{rs[0]['baseline_uf1']:.3f} / {rs[0]['baseline_uar']:.3f} | {paper_cell} | {wall} |")
    return "\n".join(lines)


def audit_lines(runs: list[dict[str, Any]], methods: set[str] | None = None) -> str:
    lines = []
    for (method, variant), rs in grouped(runs).items():
        if (methods and method not in methods) or any(r["leaky_uf1"] is None for r in rs):
            continue
        inflation = [r["leaky_uf1"] - r["uf1"] for r in rs]
        lines.append(f"- {method} ({variant}): {_mean_std([r['leaky_uf1'] for r in rs])} UF1 "
                     f"(+{statistics.mean(inflation):.3f} over the honest figure)")
    return ("Not a result: what choosing each fold's best epoch on its test subject would have reported "
            "(the leakage audit; shows how much test-epoch selection would inflate these figures):\n\n"
            + "\n".join(lines)) if lines else ""


#: (A, B) pairs compared as B - A: perturbation training against none, and the papers' claims that
#: AHMSA-Net and RRMFNet (+ PT) beat HTNet and STSTNet
PAIRS = [("ststnet:base", "ststnet:pt"), ("htnet:base", "htnet:pt"), ("rrmfnet:base", "rrmfnet:pt"),
         ("htnet:base", "ahmsanet:regions"), ("ststnet:base", "ahmsanet:regions"),
         ("htnet:base", "rrmfnet:pt"), ("ststnet:base", "rrmfnet:pt")]


def paired_comparisons(runs: list[dict[str, Any]], cache_dir: Path) -> list[dict[str, Any]]:
    """B - A for each of :data:`PAIRS` over the seeds both have (``mer compare`` of the run folders):
    the seed means' paired subject-bootstrap interval and permutation p, and each seed's difference."""
    by_entry = {f"{m}:{v}": {r["seed"]: r for r in rs} for (m, v), rs in grouped(runs).items()}
    out = []
    for a, b in PAIRS:
        if a not in by_entry or b not in by_entry:
            continue
        seeds = sorted(set(by_entry[a]) & set(by_entry[b]))
        folders = {e: [cache_dir / "runs" / by_entry[e][s]["run_folder"] for s in seeds] for e in (a, b)}
        if not seeds or not all(f.is_dir() for fs in folders.values() for f in fs):
            continue
        cmp = compare(*(SeedsResult([load_run(f) for f in folders[e]], cache_dir) for e in (a, b)))
        part = next(iter(cmp.parts))
        out.append({"a": a, "b": b, "seeds": seeds, "resamples": cmp.resamples, "permutations": cmp.permutations,
                    **{m: {"a": d.a, "b": d.b, "delta": d.delta, "low": d.interval.low, "high": d.interval.high,
                           "p": d.p_value, "per_seed": cmp.per_seed[part][m]} for m, d in cmp.parts[part].items()}})
    return out


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def comparison_table(comparisons: list[dict[str, Any]], methods: set[str] | None = None) -> str:
    rows = [c for c in comparisons
            if not methods or {c["a"].partition(":")[0], c["b"].partition(":")[0]} & methods]
    if not rows:
        return ""
    lines = ["Paired comparisons on the same clips and seeds (`mer compare` of the run folders): B - A of the "
             "seed means, 95% paired subject-bootstrap interval, two-sided permutation p:", "",
             "| B - A | seeds | UF1 B - A [95% CI] | p | UF1 difference per seed | UAR B - A [95% CI] | p |",
             "|---|---|---|---:|---|---|---:|"]
    for c in rows:
        uf1, uar = c["uf1"], c["uar"]
        lines.append(f"| {c['b']} - {c['a']} | {', '.join(map(str, c['seeds']))} | {uf1['delta']:+.3f} "
                     f"[{uf1['low']:+.3f}, {uf1['high']:+.3f}] | {_p(uf1['p'])} | "
                     f"{', '.join(f'{v:+.3f}' for v in uf1['per_seed'])} | {uar['delta']:+.3f} "
                     f"[{uar['low']:+.3f}, {uar['high']:+.3f}] | {_p(uar['p'])} |")
    return "\n".join(lines)


def timing_table(runs: list[dict[str, Any]]) -> str:
    lines = ["| method | variant | fold CPU s (mean) | fold wall s (mean) | SMIC LOSO wall | training clips per fold "
             "| composite LOSO, 2 cores (extrapolated) | within 40 min |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for (method, variant), rs in grouped(runs).items():
        cpu = statistics.mean(r["fold_cpu_s"] for r in rs)
        n_train = statistics.mean(r["n_train"] for r in rs)
        walls = [r["loso_wall_s"] for r in rs if r["loso_wall_s"]]
        minutes = composite_minutes(cpu, n_train)
        lines.append(f"| {method} | {variant} | {cpu:.1f} | {statistics.mean(r['fold_wall_s'] for r in rs):.1f} | "
                     f"{(statistics.mean(walls) / 60) if walls else float('nan'):.1f} min | {n_train:.1f} | "
                     f"{minutes:.1f} min | {'yes' if minutes <= BUDGET_MINUTES else 'NO'} |")
    return "\n".join(lines)


def write_outputs(record: dict[str, Any]) -> None:
    runs, catalogue = record["runs"], read_catalogue()
    atomic_write_text(HERE / "real_data.json", json.dumps(record, indent=1))
    atomic_write_text(HERE / "real_data.md", f"""# Real data: time per fold and the composite extrapolation

Written by `python benchmarks/real_data.py` on {record['date']} ({record['device']}). Quick profiles on
the SMIC part of the MEGC2019 precomputed-flow release (16 folds, 164 clips), two fold processes
(`--workers auto` on 2 cores), one torch thread each; other jobs shared the machine, so wall
times are on the high side. A composite fold trains on about {COMPOSITE_CLIPS * (1 - 1 / COMPOSITE_FOLDS):.1f}
clips instead of about 154; training time is linear in that (fixed epochs), so the composite LOSO
is extrapolated as: mean fold CPU-seconds x (435.5 / clips per SMIC fold) x 68 folds / 2 processes.
The fold CPU time is the fold process's own CPU time (`FoldResult.cpu_seconds`), which grows less
than wall time when other jobs compete for the cores (but does grow: caches and memory bandwidth
are shared). The extrapolation predates rule 11's in-fold retries (a fold that falls back to a second rate
trains twice). The composite LOSO times measured since, per run and seed with the machine they ran
on, are in docs/results.md ("Learning rates and time per run"), from each run's `folds.json`.

{timing_table(runs)}
""")
    for method in {r["method"] for r in runs}:
        doc = DOCS / "methods" / f"{method}.md"
        if not doc.is_file() or not MARKER.search(doc.read_text()):
            continue
        block = (f"<!-- real-data-results -->\nGenerated by `python benchmarks/real_data.py` on {record['date']}: "
                 f"SMIC part of the MEGC2019 flow release, LOSO, quick profile for real maps (rules in "
                 f"docs/protocols.md), seeds {', '.join(map(str, record['seeds']))}.\n\n"
                 f"{results_table(runs, catalogue, {method})}\n\n"
                 f"{comparison_table(record.get('comparisons', []), {method})}\n\n{audit_lines(runs, {method})}\n"
                 f"<!-- /real-data-results -->")
        atomic_write_text(doc, MARKER.sub(lambda _: block, doc.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=None, help="entries method:variant (default: all)")
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".mer")
    parser.add_argument("--report-only", action="store_true", help="rewrite the outputs from real_data.json")
    parser.add_argument("--keep", action="store_true", help="skip entries and seeds real_data.json already holds")
    args = parser.parse_args()
    if args.report_only:
        record = json.loads((HERE / "real_data.json").read_text())
        kept = record.get("comparisons") if isinstance(record.get("comparisons"), list) else []
        record["comparisons"] = paired_comparisons(record["runs"], args.cache_dir.resolve()) or kept  # folders gone
        write_outputs(record)
        return
    data_root, workers = release_setup(args.data_root, args.workers)
    previous = json.loads((HERE / "real_data.json").read_text()) if (HERE / "real_data.json").is_file() else {}
    runs = {(r["method"], r["variant"], r["seed"]): r for r in previous.get("runs", [])}
    for seed in args.seeds:  # every method once before any is repeated
        for entry in args.only or ENTRIES:
            method, _, variant = entry.partition(":")
            if args.keep and (method, variant, seed) in runs:
                continue
            row = measure(entry, seed, data_root, args.cache_dir.resolve(), workers)
            key = (row["method"], row["variant"], seed)
            if row["loso_wall_s"] is None and key in runs:  # all folds reused: keep the measured wall time
                row["loso_wall_s"] = runs[key]["loso_wall_s"]
            runs[key] = row
            print(f"{entry} seed {seed}: UF1 {row['uf1']:.4f} UAR {row['uar']:.4f} "
                  f"(majority {row['baseline_uf1']:.4f}), fold CPU {row['fold_cpu_s']:.1f} s", flush=True)
            record = {"date": dt.date.today().isoformat(), "seeds": sorted({k[2] for k in runs}),
                      "device": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
                      "runs": list(runs.values())}
            record["comparisons"] = paired_comparisons(record["runs"], args.cache_dir.resolve())
            write_outputs(record)


if __name__ == "__main__":
    main()
