"""Why do AHMSA-Net, RRMFNet and DFR-Net fall below HTNet on the SMIC release? One-seed diagnostics.

    python benchmarks/real_data_diagnostics.py              # every diagnostic, seed 0
    python benchmarks/real_data_diagnostics.py --only ahmsa-whole-face
    python benchmarks/real_data_diagnostics.py --report-only

Each diagnostic changes one thing of a method's real-data `quick` profile and runs the same LOSO
as ``benchmarks/real_data.py`` (seed 0, whose reference figure is in ``real_data.json``). The
list below was written before any of them ran. They are **diagnostics, not results**: each one
looks at the test folds, so no profile is changed because of them (that would be choosing a
hyperparameter by its test score); they say where the gap comes from. Writes
``benchmarks/real_data_diagnostics.{json,md}``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from mercore.io import atomic_write_text

from real_data import HERE, REPO, measure, release_setup

#: name -> (method:variant, overrides, the question it answers)
DIAGNOSTICS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ahmsa-whole-face": ("ahmsanet:whole-face", {},
                         "regions: do the five regions cut from the release's 28x28 map lose what the whole map holds?"),
    "ahmsa-lr-3e-4": ("ahmsanet:regions", {"train.lr": 3e-4},
                      "schedule: HTNet, the same transformer family, runs at 3e-4 (rule 11); does AHMSA-Net gain from it?"),
    "ahmsa-no-normalize": ("ahmsanet:regions", {"data.normalize": False},
                           "normalisation: HTNet feeds the 8-bit maps as they are; AHMSA-Net standardises per fold"),
    "ahmsa-unweighted": ("ahmsanet:regions", {"train.class_weighting": "none"},
                         "class weighting: the paper's plain cross-entropy instead of rule 6's balanced loss"),
    "rrmfnet-5x-epochs": ("rrmfnet:base", {"train.epochs": 40},
                          "capacity of the CPU budget: five times the epochs (40), everything else the profile's"),
    "dfrnet-5x-epochs": ("dfrnet:full", {"train.epochs": 90},
                         "capacity of the CPU budget: five times the epochs (90), everything else the profile's"),
}


def reference(entry: str, seed: int) -> dict[str, Any] | None:
    """The seed's row of the reported profile (``real_data.json``) for the same method."""
    path = HERE / "real_data.json"
    method, _, variant = entry.partition(":")
    variant = "regions" if method == "ahmsanet" else variant
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    return next((r for r in runs if (r["method"], r["variant"], r["seed"]) == (method, variant, seed)), None)


def write_outputs(record: dict[str, Any]) -> None:
    atomic_write_text(HERE / "real_data_diagnostics.json", json.dumps(record, indent=1))
    lines = ["| diagnostic | method | change | question | UF1 | UAR | profile's UF1 (same seed) | difference "
             "| fold CPU s |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for name, row in record["runs"].items():
        entry, overrides, question = DIAGNOSTICS[name]
        ref = reference(entry, row["seed"])
        change = ", ".join(f"`{k}={v}`" for k, v in overrides.items()) or f"variant {row['variant']}"
        lines.append(f"| {name} | {row['method']} | {change} | {question} | {row['uf1']:.3f} | {row['uar']:.3f} | "
                     f"{ref['uf1']:.3f} | {row['uf1'] - ref['uf1']:+.3f} | {row['fold_cpu_s']:.1f} |"
                     if ref else f"| {name} | {row['method']} | {change} | {question} | {row['uf1']:.3f} | "
                     f"{row['uar']:.3f} | - | - | {row['fold_cpu_s']:.1f} |")
    atomic_write_text(HERE / "real_data_diagnostics.md", f"""# Real data: diagnostics (not results)

Written by `python benchmarks/real_data_diagnostics.py` on {record['date']}. SMIC part of the MEGC2019
flow release, LOSO, seed {record['seed']}, each method's real-data `quick` profile with **one**
change. These runs look at the test folds, so they are not results and no profile was changed
because of them; they say where a gap to HTNet comes from. One seed: differences under about
0.05 UF1 are within the seed-to-seed spread of `docs/results.md`. The diagnostics were listed
in the script before any of them ran.

{chr(10).join(lines)}
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=sorted(DIAGNOSTICS), default=None)
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".mer")
    parser.add_argument("--report-only", action="store_true", help="rewrite the outputs from the JSON")
    args = parser.parse_args()
    path = HERE / "real_data_diagnostics.json"
    record = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    if args.report_only:
        write_outputs(record)
        return
    data_root, workers = release_setup(args.data_root, args.workers)
    for name in args.only or DIAGNOSTICS:
        entry, overrides, _ = DIAGNOSTICS[name]
        row = measure(entry, args.seed, data_root, args.cache_dir.resolve(), workers, overrides)
        record["runs"][name] = row
        record.update(date=dt.date.today().isoformat(), seed=args.seed)
        print(f"{name}: UF1 {row['uf1']:.4f} UAR {row['uar']:.4f}, fold CPU {row['fold_cpu_s']:.1f} s", flush=True)
        write_outputs(record)


if __name__ == "__main__":
    main()
