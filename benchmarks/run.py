"""Speed and size benchmarks: one command writes ``results.json`` and ``results.md`` here.

    python benchmarks/run.py                 # CI-sized: 4 synthetic subjects, quick profiles
    python benchmarks/run.py --subjects 16   # the full default synthetic corpus

Figures: optical-flow throughput per backend and size; per installed method its parameters,
FLOPs, median single-sample latency and training throughput (samples/s, batch 8; paper config)
beside the paper's figures, and the wall
time of a quick-profile LOSO sequentially and with ``--workers 2``. Every number is measured on
the machine that runs this; the device is recorded with it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from mercore.catalogue import read_catalogue
from mercore.config import ConfigError, resolve_config
from mercore.data.dataset import LoadOptions
from mercore.data.frames import read_image, resize, to_gray
from mercore.features.flow import FLOW_BACKENDS, compute_flow
from mercore.features.store import FeatureError, build_inputs
from mercore.io import atomic_write_text
from mercore.plugins import load_registry
from mercore.profiling import profile_method
from mercore.runner import run, select_subjects
from mercore.spec import ExecutionOptions, RunSpec

HERE = Path(__file__).resolve().parent


def device_info() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def flow_throughput(cache: Path, pairs: int = 8) -> list[dict]:
    data = load_registry().dataset("synthetic").load(None, LoadOptions(cache_dir=cache))
    rows = []
    for size in (128, 224):
        frames = [(to_gray(resize(read_image(s.frames[s.onset]), size)), to_gray(resize(read_image(s.frames[s.apex]), size)))
                  for s in data.samples[:pairs]]
        for backend in FLOW_BACKENDS:
            compute_flow(*frames[0], backend=backend)  # warm-up
            start = time.perf_counter()
            for a, b in frames:
                compute_flow(a, b, backend=backend)
            seconds = (time.perf_counter() - start) / len(frames)
            rows.append({"backend": backend, "size": size, "ms_per_pair": round(seconds * 1000, 2),
                         "pairs_per_s": round(1 / seconds, 1)})
    return rows


def model_figures(methods: list[str]) -> list[dict]:
    catalogue = read_catalogue()
    rows = []
    for name in methods:
        method = load_registry().method(name)
        for variant in (method.variants or {None: ""}):
            try:
                report = profile_method(RunSpec(method, variant=variant, profile="paper"), threads=1, runs=20)
            except (ConfigError, FeatureError) as exc:  # e.g. a variant for precomputed-flow releases: no synthetic input
                print(f"skipped {name} {variant}: {exc}")
                continue
            paper = (catalogue.get(name, {}).get("paper_size") or {})
            rows.append({"method": name, "variant": variant, "parameters": report["parameters"],
                         "gflops": report["gflops"], "latency_ms_1thread": report["latency_ms_median"],
                         "train_samples_per_s_1thread": report["train_samples_per_s"],
                         "paper_parameters": paper.get("parameters"), "paper_gflops": paper.get("gflops")})
    return rows


def warm_features(name: str, cache: Path, subjects: list[str]) -> float:
    """Fill the feature cache for a method's quick profile; returns the seconds it took. Without
    this the first timed LOSO would also pay for the optical flow and the second would not."""
    registry = load_registry()
    method = registry.method(name)
    config = resolve_config(method, profile="quick")
    data = select_subjects(registry.dataset("synthetic").load(None, LoadOptions(cache_dir=cache)), subjects)
    store = registry.feature_store(cache)
    start = time.perf_counter()
    build_inputs(store, method.features(config), data.samples, progress=False)
    return time.perf_counter() - start


def loso_wall_time(methods: list[str], cache: Path, subjects: int) -> list[dict]:
    """Quick-profile LOSO, features cached first; ``--workers 2`` runs before the sequential run,
    so features computed inside training (e.g. MPFNet's magnified clips) count against it."""
    names = [f"sub{i:02d}" for i in range(1, subjects + 1)]
    rows = []
    for name in methods:
        row = {"method": name, "subjects": subjects, "profile": "quick",
               "features_s": round(warm_features(name, cache, names), 1)}
        for workers in (2, 0):
            start = time.perf_counter()
            result = run(RunSpec(name, subjects=names),
                         ExecutionOptions(workers=workers, cache_dir=cache, fresh=True, progress=False, tracking=False))
            row[f"seconds_workers_{workers}"] = round(time.perf_counter() - start, 1)
            row[f"uf1_workers_{workers}"] = round(result.metrics["uf1"], 4)
        row["baseline_uf1"] = round(result.baseline["uf1"], 4)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r.get(k) is None else str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=4, help="synthetic subjects in the LOSO timing")
    parser.add_argument("--methods", nargs="*", default=None, help="default: every installed method")
    parser.add_argument("--cache-dir", type=Path, default=Path(".mer"))
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--skip-loso", action="store_true")
    args = parser.parse_args()
    methods = args.methods or load_registry().list("methods")
    results = {"device": device_info(), "flow": flow_throughput(args.cache_dir), "models": model_figures(methods),
               "loso": [] if args.skip_loso else loso_wall_time(methods, args.cache_dir, args.subjects)}
    atomic_write_text(args.out / "results.json", json.dumps(results, indent=2))
    md = [f"# Benchmarks\n\nMeasured by `python benchmarks/run.py` on {results['device']}.\n",
          "## Optical flow (onset->apex pair, one process)\n", table(results["flow"]),
          "## Models (paper configuration, one CPU thread; latency at batch 1, training at batch 8)\n", table(results["models"]),
          "No training throughput: the model's logits carry no gradient (MPFNet classifies by prototypes\n"
          "set after its training stages), so it trains only through its method's stages. Paper figures\n"
          "are `paper_size` in registry.yaml, where a paper states them as text.\n",
          f"## LOSO wall time (quick profile, {args.subjects} synthetic subjects)\n", table(results["loso"]),
          "`features_s`: computing the features not already in the cache, which the methods are run\n"
          "through in order and share (a later method reuses an earlier one's flow). The UF1 columns\n"
          "check that parallel and sequential folds agree; with a few subjects (~8 test clips a fold)\n"
          "they are not accuracy estimates: full-corpus figures are in docs/methods/.\n"]
    atomic_write_text(args.out / "results.md", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
