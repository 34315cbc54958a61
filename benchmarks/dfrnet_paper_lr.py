"""Does DFR-Net's paper setting learn from random weights? Writes ``dfrnet_paper_lr.json`` here.

The paper "fine-tuned" DFR-Net with Adam at lr 1e-5, batch 32, at most 100 epochs with early
stopping after 10 epochs without a lower validation loss (Sec. 4.2), but names no pre-trained
weights; the plugin trains every layer from random (Kaiming) initialisation. This runs the
``paper`` profile on the SMIC part of the precomputed-flow release (apex crop + u/v/strain map:
the ``apex-flow`` branches the release allows) for a few LOSO folds, each trained on all other
subjects exactly as ``mer run`` would (same validation split, normalisation and seeds), and
records per fold the training and validation loss curves, the epoch early stopping kept and the
test predictions. Only the input size may be reduced (``--size``; the paper's lr, batch,
schedule and stopping rule are untouched) so that it fits a CPU.

    python benchmarks/dfrnet_paper_lr.py --data-root ../shared/data/megc2019-flow-smic \
        --size 32 --test s01 s02 s03 [--set train.lr=1e-3]

The full paper run is ``mer run --plugin dfrnet --dataset megc2019-flow --data-root
../shared/data/megc2019-flow-smic --profile paper`` (16 folds at 128 px; a GPU job).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from sklearn.metrics import f1_score, recall_score

from mercore.config import resolve_config
from mercore.data.dataset import LoadOptions
from mercore.data.tensors import TensorSet
from mercore.evaluation.fold import fit_fold
from mercore.protocols import loso_folds
from mercore.features.store import build_inputs
from mercore.io import atomic_write_text
from mercore.plugins import load_registry

HERE = Path(__file__).resolve().parent


def curve(history: list, key: str) -> list[float]:
    return [v for k, v, _ in sorted((h for h in history if h[0] == key), key=lambda h: h[2])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--size", type=int, default=128, help="input size (the paper profile's is 128)")
    parser.add_argument("--test", nargs="+", default=["s01", "s02", "s03"], help="test subjects of the folds to run")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra key=value overrides")
    parser.add_argument("--cache-dir", type=Path, default=Path(".mer"))
    parser.add_argument("--out", type=Path, default=HERE / "dfrnet_paper_lr.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    registry = load_registry(only=["dfrnet"])
    method = registry.method("dfrnet")
    ds = registry.dataset("megc2019-flow")
    sets = [f"features.size={args.size}", "run.device=cpu", "run.checkpoints=false",
            "evaluation.leakage_audit=false", *args.sets]
    config = resolve_config(method, variant="apex-flow", profile="paper", sets=sets, inputs=ds.kind,
                            dataset="megc2019-flow", aligned=ds.face_aligned)
    data = ds.load(args.data_root, LoadOptions(cache_dir=args.cache_dir))
    store = registry.feature_store(args.cache_dir)
    requests = method.features(config)
    inputs = build_inputs(store, requests, data.samples, progress=False)
    labels = torch.tensor([s.label(data.task) for s in data.samples])
    full = TensorSet(inputs, labels, list(data.samples))
    scratch = tempfile.TemporaryDirectory(prefix="dfrnet-paper-lr-")  # fold folders (nothing is kept there)
    folds = [f for f in loso_folds(full.groups) if f.name.split("/")[-1] in args.test]
    rows, y_true, y_pred, y_base = [], [], [], []
    for fold in folds:
        t0 = time.time()
        result = fit_fold(method, full, fold, requests, config, data, store,  # one fold, as `mer run` runs it
                          Path(scratch.name) / f"{fold.index:03d}")
        loss, val = curve(result.history, "train/loss"), curve(result.history, "train/val_loss")
        best = [v for k, v, _ in result.history if k == "train/best_epoch"]
        rows.append({"fold": fold.name, "n_train": result.n_train, "n_val": result.n_val, "epochs_run": len(loss),
                     "best_epoch": int(best[0]) if best else None, "train_loss_first": loss[0], "train_loss_min": min(loss),
                     "train_loss_last": loss[-1], "val_loss_first": val[0] if val else None,
                     "val_loss_min": min(val) if val else None, "seconds": round(time.time() - t0, 1),
                     "y_true": result.y_true, "y_pred": result.y_pred})
        y_true += result.y_true
        y_pred += result.y_pred
        y_base += result.baseline_pred
        print(json.dumps({k: v for k, v in rows[-1].items() if not k.startswith("y_")}), flush=True)
    summary = {"config": {"size": args.size, "sets": sets, "lr": config["train"]["lr"],
                          "epochs": config["train"]["epochs"], "early_stopping": config["train"]["early_stopping"],
                          "validation": config["validation"]["subjects"], "batch_size": config["train"]["batch_size"]},
               "folds": rows,
               "uf1": float(f1_score(y_true, y_pred, average="macro")),
               "uar": float(recall_score(y_true, y_pred, average="macro")),
               "baseline_uf1": float(f1_score(y_true, y_base, average="macro")),
               "baseline_uar": float(recall_score(y_true, y_base, average="macro"))}
    atomic_write_text(args.out, json.dumps(summary, indent=1))
    scratch.cleanup()
    print(json.dumps({k: v for k, v in summary.items() if k != "folds"}))


if __name__ == "__main__":
    main()
