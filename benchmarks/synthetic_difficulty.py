"""How hard is the synthetic corpus? Writes ``synthetic_difficulty.{json,md}`` here.

LOSO over the default corpus (3-class and 5-class tasks) with three reference predictors:
the majority class of the training subjects, logistic regression on the TV-L1 onset->apex flow
(downsampled to 16x16), and the same on the apex image alone. A corpus whose class signal is in
the motion gives flow >> apex-only ~ majority.

    python benchmarks/synthetic_difficulty.py [--cache-dir .mer]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mercore.data.dataset import LoadOptions
from mercore.io import atomic_write_text
from mercore.plugins import load_registry

HERE = Path(__file__).resolve().parent


def downsample(arrays: np.ndarray, n: int = 16) -> np.ndarray:
    return np.stack([cv2.resize(np.moveaxis(a, 0, -1), (n, n), interpolation=cv2.INTER_AREA).ravel() for a in arrays])


def loso_uf1(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    pred = np.zeros_like(y)
    for g in np.unique(groups):
        test = groups == g
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(x[~test], y[~test])
        pred[test] = model.predict(x[test])
    return float(f1_score(y, pred, average="macro"))


def majority_uf1(y: np.ndarray, groups: np.ndarray) -> float:
    pred = np.zeros_like(y)
    for g in np.unique(groups):
        test = groups == g
        pred[test] = np.bincount(y[~test]).argmax()
    return float(f1_score(y, pred, average="macro"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=Path(".mer"))
    args = parser.parse_args()
    registry = load_registry()
    store = registry.feature_store(args.cache_dir)
    rows = []
    for task in ("megc3", "sde5"):
        data = registry.dataset("synthetic").load(None, LoadOptions(task=task, cache_dir=args.cache_dir))
        y = np.array([s.label(task) for s in data.samples])
        groups = np.array([s.group for s in data.samples])
        flow = np.stack([store.get("optical_flow", s, size=128) for s in data.samples])
        apex = np.stack([store.get("apex_frame", s, size=128, gray=True) for s in data.samples])
        rows.append({"task": task, "samples": len(y), "subjects": len(np.unique(groups)),
                     "majority_uf1": round(majority_uf1(y, groups), 4),
                     "flow_logreg_uf1": round(loso_uf1(downsample(flow), y, groups), 4),
                     "apex_logreg_uf1": round(loso_uf1(downsample(apex), y, groups), 4)})
    atomic_write_text(HERE / "synthetic_difficulty.json", json.dumps(rows, indent=2))
    lines = ["# Synthetic corpus difficulty (LOSO UF1, default corpus)\n",
             "Measured by `python benchmarks/synthetic_difficulty.py`.\n",
             "| task | samples | subjects | majority | flow + logistic regression | apex only + logistic regression |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['task']} | {r['samples']} | {r['subjects']} | {r['majority_uf1']} | {r['flow_logreg_uf1']} | "
              f"{r['apex_logreg_uf1']} |" for r in rows]
    atomic_write_text(HERE / "synthetic_difficulty.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
