"""Do the composite's weak methods fail to fit their training subjects, or fail to carry over?

    python benchmarks/composite_fit.py                      # every entry below, seed 0
    python benchmarks/composite_fit.py --only dfrnet:full
    python benchmarks/composite_fit.py --report-only

DFR-Net and RRMFNet score far below STSTNet, HTNet and AHMSA-Net on the MEGC2019 composite
(docs/results.md). Two explanations predict different things on the *training* subjects: a model
that cannot fit within its CPU budget scores low on the clips it trained on; a model that fits
them and still fails on the left-out subject does not generalise. This measures which, without
touching a test subject: each entry's composite ``quick`` profile (as ``benchmarks/composite.py``
runs it) is trained on the training subjects of a few LOSO folds, exactly as that fold of the
committed seed-0 run trained it (same config, fold seed ``run.seed + fold index``, one torch
thread as in a fold process), and scored on those same training clips.

Fixed before the first measurement: seed 0; the folds are those that leave out the first subject
(in name order) of each part of the composite (CASME II, SAMM, SMIC); the entries are the five
base entries of ``composite.py`` and RRMFNet's longer budget. Nothing here is used to choose a
profile. Writes ``benchmarks/composite_fit.{json,md}``; the results page reads the JSON.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mercore.data.tensors import TensorSet
from mercore.evaluation.fold import fit_model
from mercore.features.store import build_inputs
from mercore.io import atomic_write_text
from mercore.metrics import scores
from mercore.protocols import loso_folds
from mercore.runner import prepare
from mercore.shared import shared_dir
from mercore.spec import ExecutionOptions, RunSpec
from mercore.training.supervised import predict_logits

from composite import BY_NAME, stored_folder

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT_JSON = HERE / "composite_fit.json"
OUT_MD = HERE / "composite_fit.md"
ENTRIES = ("ststnet:base", "htnet:base", "ahmsanet:regions", "dfrnet:full", "rrmfnet:base", "rrmfnet:pt-long")
SEED = 0


def first_subject_folds(groups: list[str]) -> list[Any]:
    """The LOSO folds that leave out the first subject (in name order) of each corpus part."""
    folds = loso_folds(groups)
    firsts = {}
    for fold in folds:
        subject = groups[fold.test[0]]
        part = subject.split("/")[0]
        if part not in firsts or subject < groups[firsts[part].test[0]]:
            firsts[part] = fold
    return [firsts[p] for p in sorted(firsts)]


def losses(history: list[tuple[str, float, int]], epochs: int) -> tuple[float, float]:
    """Mean training loss of the first and last epoch of the kept training run (the last
    ``epochs`` loss records: a fit check's earlier tries come before it)."""
    values = [v for k, v, _ in history if k.endswith("/loss") and k.split("/")[0] == "train"][-epochs:]
    return values[0], values[-1]


def measure(entry_name: str, data_root: Path, cache_dir: Path) -> list[dict[str, Any]]:
    entry = BY_NAME[entry_name]
    spec = RunSpec(entry.method, variant=entry.variant, dataset="megc2019-flow", data_root=data_root,
                   profile="quick", overrides=entry.overrides, seed=SEED)
    prep = prepare(spec, ExecutionOptions(cache_dir=cache_dir, progress=False, tracking=False))
    store = prep.registry.feature_store(cache_dir)
    samples = prep.data.samples
    requests = prep.method.features(prep.config)
    inputs = build_inputs(store, requests, samples, progress=False)
    labels = torch.tensor([s.label(prep.data.task) for s in samples], dtype=torch.long)
    full = TensorSet(inputs, labels, list(samples))
    groups = [s.group for s in samples]
    committed = stored_folder(entry_name, SEED) / "summary.json"
    per_subject = json.loads(committed.read_text())["per_subject_accuracy"] if committed.is_file() else {}
    epochs = int(prep.config["train"]["epochs"])
    rows = []
    for fold in first_subject_folds(groups):
        torch.set_num_threads(1)
        start, cpu = time.perf_counter(), time.process_time()
        fitted = fit_model(prep.method, full, fold, requests, prep.config, prep.data, store,
                           cache_dir / "fit-diagnostic" / entry_name.replace(":", "-") / fold.name.replace("/", "-"),
                           datasets=prep.registry.dataset_adapters())
        train = fitted.data.train
        pred = predict_logits(fitted.model, train, fitted.ctx.device, 256).argmax(1).numpy()
        fit = scores(train.labels.numpy(), pred, prep.data.labels.num_classes)
        first, last = losses(fitted.history, epochs)
        lr = next((v for k, v, _ in fitted.history if k.endswith("/fit_check_lr")), None)
        subject = groups[fold.test[0]]
        rows.append({"entry": entry_name, "fold": fold.name, "left_out": subject, "n_train": len(train),
                     "epochs": epochs, "kept_lr": lr, "train_loss_first": round(first, 4),
                     "train_loss_last": round(last, 4), "train_uf1": round(float(fit.uf1), 4),
                     "train_uar": round(float(fit.uar), 4), "train_acc": round(float(fit.acc), 4),
                     "committed_test_acc_of_left_out": per_subject.get(subject),
                     "cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def committed_uf1(entry: str) -> float | None:
    path = stored_folder(entry, SEED) / "summary.json"
    return json.loads(path.read_text())["overall"]["uf1"] if path.is_file() else None


def write_markdown(doc: dict[str, Any]) -> None:
    lines = [
        "# Composite: do the methods fit their training subjects? (a diagnostic, not a result)", "",
        f"Written by `python benchmarks/composite_fit.py` ({doc['machine']}, torch {doc['torch']}). "
        "Each entry's composite `quick` profile trained on the folds that leave out the first subject "
        "of each part, as its committed seed-0 LOSO run trained them (same config and fold seed), then "
        "scored **on its own training clips**. No test subject is looked at; the committed run's pooled "
        "LOSO UF1 (seed 0) stands beside it for comparison. Folds and entries were fixed before the "
        "first measurement; nothing here chose a profile.", "",
        "| entry | left out | training clips | epochs | kept lr | training loss first -> last epoch "
        "| UF1 / acc on the training clips | committed LOSO UF1 (seed 0) | fold CPU s | measured |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for r in doc["rows"]:
        test = committed_uf1(r["entry"])
        lines.append(f"| {r['entry']} | {r['left_out']} | {r['n_train']} | {r['epochs']} | {r['kept_lr']} "
                     f"| {r['train_loss_first']:.3f} -> {r['train_loss_last']:.3f} "
                     f"| {r['train_uf1']:.3f} / {r['train_acc']:.3f} | "
                     f"{'-' if test is None else f'{test:.3f}'} | {r['cpu_s']:.0f} | {r['date']} |")
    lines += ["", "Mean over the folds measured:", "",
              "| entry | folds | UF1 on the training clips (mean) | committed LOSO UF1 (seed 0) | gap |",
              "|---|---:|---:|---:|---:|"]
    for entry, s in summarise(doc["rows"]).items():
        test = committed_uf1(entry)
        gap = "-" if test is None else f"{s['train_uf1'] - test:+.3f}"
        lines.append(f"| {entry} | {s['folds']} | {s['train_uf1']:.3f} | {'-' if test is None else f'{test:.3f}'} | {gap} |")
    atomic_write_text(OUT_MD, "\n".join(lines) + "\n")


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per entry: the folds measured and the mean UF1 on their training clips (for the results page)."""
    out: dict[str, dict[str, float]] = {}
    for entry in dict.fromkeys(r["entry"] for r in rows):
        mine = [r for r in rows if r["entry"] == entry]
        out[entry] = {"folds": len(mine), "train_uf1": float(np.mean([r["train_uf1"] for r in mine])),
                      "train_loss_last": float(np.mean([r["train_loss_last"] for r in mine]))}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=ENTRIES, default=list(ENTRIES))
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".mer")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    doc = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {"rows": []}
    if not args.report_only:
        data_root = (args.data_root or shared_dir() / "data" / "megc2019-flow").resolve()
        if not (data_root / "labels.csv").is_file():
            raise SystemExit(f"no flow release at {data_root} (labels.csv missing): pass --data-root or set MER_SHARED")
        for entry in args.only:
            rows = measure(entry, data_root, args.cache_dir.resolve())
            today = dt.date.today().isoformat()
            doc["rows"] = [r for r in doc["rows"] if r["entry"] != entry] + [{**r, "date": today} for r in rows]
            doc.update(machine=f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
                       torch=torch.__version__)
            atomic_write_text(OUT_JSON, json.dumps(doc, indent=1))  # each entry kept as it finishes
            write_markdown(doc)
    write_markdown(doc)


if __name__ == "__main__":
    sys.exit(main())
