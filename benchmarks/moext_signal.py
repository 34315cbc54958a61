"""Where does MoExt lose the motion signal? Writes ``moext_signal.json`` here (docs/methods/moext.md reads it).

A diagnosis harness on the built-in synthetic corpus (3-class ``megc3``), not a result to put
beside the paper's. The subjects are split into ``--folds`` groups; each fold trains on the other
groups' subjects only and is scored on its own (pooled over folds, like LOSO). With the quick
profile's model and schedule and the paper's pre-training weights and data (alpha_1 = 0.5,
alpha_2 = 1; the training subjects' clips of every emotion plus their macro clips), each arm
records:

* ``probe``: a linear probe (standardised logistic regression, C = 0.1, balanced; fixed before any
  run) on the frozen shape-feature difference ``|S_a - S_o|`` of the model after the arm's training,
  fitted on the training subjects' clips and scored on the held-out ones: how much class signal the
  separator's features carry, whatever the classifier does;
* ``test``: the model's own predictions (objective arms);
* ``stats``: the size of the motion in the features, ``E||S_a - S_o|| / E||S_o - mean(S_o)||``
  (the onset-to-apex change relative to the spread between clips), the reconstruction error and
  the pixel size of the motion, ``E|apex - onset|``;
* ``grad``: at the start of objective learning, the norm of the cross-entropy gradient that reaches
  the separator through ``|S_a - S_o|`` and through the ``S_a`` input of C2 (each path alone).

Arms: ``random`` (no training), ``pre:<a1>,<a2>`` (pre-training only), ``obj:<init>`` (objective
learning from ``random`` or the paper pre-training ``pre``), ``obj:pre:frozen`` (separator frozen
after pre-training: only the motion extractor and classifier learn), ``obj:pre:nobn`` (the motion
extractor's BatchNorm layers kept in eval mode, running statistics from pre-training),
``obj:pre:slow`` (objective learning at the paper's lr 1e-4, batch 20, 30 epochs), and
``diff-image`` (the same trunk and branch fed the difference image ``apex - onset``: the control
that shows the data and loop can learn).

    python benchmarks/moext_signal.py --arms random pre:0.5,1 pre:0,0 [--folds 4] [--cache-dir .mer]

Runs on one CPU thread. On the shared 2-core machine a pre-training epoch took 10-17 s per fold
and an objective epoch ~1-2 s; the ten arms of docs/methods/moext.md took 35 minutes.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from mer_moext.pretrain import MoExtPretrainer, ObjectiveTrainer
from mer_moext.model import Branch, MoExtModel, ResNetTrunk
from mercore import FoldData, StageContext, TensorSet
from mercore.config import resolve_config
from mercore.data.dataset import LoadOptions
from mercore.io import atomic_write_text
from mercore.plugins import load_registry

HERE = Path(__file__).resolve().parent
PROBE_C = 0.1
SLOW = {"lr": 1e-4, "batch_size": 20, "epochs": 30}  # the paper's objective-learning schedule (Sec. 4.1.2)


def probe(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=3000, class_weight="balanced"))
    model.fit(x[train], y[train])
    return model.predict(x[~train])


@torch.no_grad()
def embed(model: MoExtModel, onset: torch.Tensor, apex: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Shape vectors of onset and apex (eval mode), (N, d) each."""
    model.eval()
    so = torch.cat([model.separator.shape_features(onset[i:i + 64]) for i in range(0, len(onset), 64)])
    sa = torch.cat([model.separator.shape_features(apex[i:i + 64]) for i in range(0, len(apex), 64)])
    return so.numpy(), sa.numpy()


def feature_stats(so: np.ndarray, sa: np.ndarray) -> dict[str, float]:
    motion = np.linalg.norm(sa - so, axis=1).mean()
    spread = np.linalg.norm(so - so.mean(0), axis=1).mean()
    return {"motion_over_spread": float(motion / max(spread, 1e-12)), "spread": float(spread)}


def path_gradients(model: MoExtModel, onset: torch.Tensor, apex: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Norm of the CE gradient on the separator's weights through each input of C2 alone (train mode)."""
    model.train()
    params = [p for p in model.separator.parameters() if p.requires_grad]
    out = {}
    for keep in ("delta", "apex"):
        b = len(onset)
        s = model.separator.shape_features(torch.cat([onset, apex]))
        so, sa = s[:b], s[b:]
        delta = (sa - so).abs()
        if model.motion.mode == "difference":
            if keep == "apex":
                continue
            m = delta
        else:
            d_in = delta if keep == "delta" else delta.detach()
            a_in = sa.detach() if keep == "delta" else sa
            m = model.motion.c2(torch.cat([model.motion.c1(d_in[..., None, None]), a_in[..., None, None]], 1)).flatten(1)
        loss = nn.functional.cross_entropy(model.classifier(m), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        out[f"grad_{keep}"] = float(torch.sqrt(sum((g * g).sum() for g in grads if g is not None)))
    return out


class DiffImageNet(nn.Module):
    """Control: the MoExt trunk + shape branch on the difference image, a linear classifier."""

    def __init__(self, cfg: dict[str, Any], num_classes: int) -> None:
        super().__init__()
        m = cfg["model"]
        self.trunk = ResNetTrunk(m["backbone_widths"], m["backbone_blocks"])
        c = self.trunk.out_channels
        self.branch = Branch(c, c, m["branch_conv_blocks"], m["branch_fc"], m["feature_dim"])
        self.classifier = nn.Linear(m["feature_dim"], num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.branch(self.trunk(batch["apex"] - batch["onset"])))


def freeze_bn_in(module: nn.Module) -> None:
    """Keep ``module``'s BatchNorm layers in eval mode whenever the model is put in train mode."""
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.train = lambda mode=True, bn=bn: nn.Module.train(bn, False)  # type: ignore[method-assign]
        bn.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["random", "pre:0.5,1"])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--pre-epochs", type=int, default=None, help="default: the quick profile's")
    parser.add_argument("--obj-epochs", type=int, default=None, help="default: the quick profile's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=Path(".mer"))
    parser.add_argument("--out", type=Path, default=HERE / "moext_signal.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    registry = load_registry(only=["moext"])
    method = registry.method("moext")
    cfg = resolve_config(method, profile="quick", dataset="synthetic", aligned=True)
    if args.pre_epochs is not None:
        cfg["pretrain"]["epochs"] = args.pre_epochs
    if args.obj_epochs is not None:
        cfg["train"]["epochs"] = args.obj_epochs
    store = registry.feature_store(args.cache_dir)
    data = registry.dataset("synthetic").load(None, LoadOptions(task="megc3", cache_dir=args.cache_dir))
    samples = data.samples
    requests = method.features(cfg)
    inputs = {k: store.stack(r, samples, progress=False) for k, r in requests.items()}
    labels = torch.tensor([s.label("megc3") for s in samples])
    full = TensorSet(inputs, labels, list(samples))
    y = labels.numpy()
    subjects = sorted({s.group for s in samples})
    fold_of = {g: i % args.folds for i, g in enumerate(subjects)}
    groups = np.array([fold_of[s.group] for s in samples])
    pixel_motion = float((inputs["apex"] - inputs["onset"]).abs().mean())
    pixel_spread = float((inputs["onset"] - inputs["onset"].mean(0)).abs().mean())

    def extract(request: Any, extra: list) -> torch.Tensor:
        return store.stack(request, extra, progress=False)

    results: dict[str, Any] = {"config": {"folds": args.folds, "seed": args.seed, "pre_epochs": cfg["pretrain"]["epochs"],
                                          "obj_epochs": cfg["train"]["epochs"], "probe_C": PROBE_C,
                                          "pixel_motion": pixel_motion, "pixel_spread": pixel_spread},
                               "arms": {}}
    pretrained: dict[tuple[str, int], MoExtModel] = {}
    for arm in args.arms:
        t0 = time.time()
        probe_pred, test_pred, truth, stats = np.zeros_like(y), np.zeros_like(y), np.zeros_like(y), []
        for k in range(args.folds):
            test_idx = np.flatnonzero(groups == k)
            train_idx = np.flatnonzero(groups != k)
            fold = FoldData(full.subset(train_idx), None, full.subset(test_idx),
                            tuple(sorted({samples[i].group for i in test_idx})))
            log: list = []
            ctx = StageContext(device=torch.device("cpu"), seed=args.seed + k, num_classes=3,
                               class_names=data.labels.classes, fold=f"f{k}", work_dir=args.out.parent, progress=False,
                               log_metric=lambda key, v, step: log.append((key, v, step)), extract=extract)
            torch.manual_seed(args.seed + k)
            fold_stats: dict[str, float] = {}
            if arm == "diff-image":
                model: nn.Module = DiffImageNet(cfg, 3)
                ObjectiveTrainer.from_config(cfg["train"], augment=method.augment(cfg)).fit(model, fold, ctx)
            else:
                model = method.build_model(cfg, 3)
                kind, _, rest = arm.partition(":")
                if kind == "pre" or rest.startswith("pre"):
                    a1, a2 = (0.5, 1.0) if rest.startswith("pre") else (float(v) for v in rest.split(","))
                    key = (f"{a1},{a2}", k)
                    if key not in pretrained:
                        stage = MoExtPretrainer.from_config({**cfg["pretrain"], "a1": a1, "a2": a2, "preview": 0},
                                                            requests=requests, augment=method.augment(cfg))
                        stage.fit(model, fold, ctx)
                        pretrained[key] = copy.deepcopy(model)
                        fold_stats.update({k2.split("/")[1]: v for k2, v, step in log
                                           if step == cfg["pretrain"]["epochs"] - 1 or k2.endswith("pairs")})
                    model = copy.deepcopy(pretrained[key])
                if kind == "obj":
                    tr = fold.train
                    fold_stats.update(path_gradients(model, tr.inputs["onset"][:32], tr.inputs["apex"][:32],
                                                     tr.labels[:32]))
                    if rest.endswith("frozen"):  # weights and BatchNorm statistics of the separator stay
                        for p in model.separator.parameters():
                            p.requires_grad_(False)
                        freeze_bn_in(model.separator)
                    if rest.endswith("nobn"):
                        freeze_bn_in(model.motion)
                    train_cfg = {**cfg["train"], **(SLOW if rest.endswith("slow") else {})}
                    ObjectiveTrainer.from_config(train_cfg, augment=method.augment(cfg)).fit(model, fold, ctx)
                so, sa = embed(model, inputs["onset"], inputs["apex"])
                fold_stats.update(feature_stats(so[test_idx], sa[test_idx]))
                train_mask = groups != k
                probe_pred[test_idx] = probe(np.abs(sa - so), y, train_mask)
            if arm.startswith("obj") or arm == "diff-image":
                model.eval()
                with torch.no_grad():
                    logits = model({"onset": fold.test.inputs["onset"], "apex": fold.test.inputs["apex"]})
                test_pred[test_idx] = logits.argmax(1).numpy()
            truth[test_idx] = y[test_idx]
            stats.append(fold_stats)
            print(arm, "fold", k, {key: round(v, 4) for key, v in fold_stats.items()}, flush=True)
        row: dict[str, Any] = {"seconds": round(time.time() - t0, 1)}
        if arm != "diff-image":
            row["probe_uf1"] = float(f1_score(truth, probe_pred, average="macro"))
            row["probe_uar"] = float(recall_score(truth, probe_pred, average="macro"))
        if arm.startswith("obj") or arm == "diff-image":
            row["test_uf1"] = float(f1_score(truth, test_pred, average="macro"))
            row["test_uar"] = float(recall_score(truth, test_pred, average="macro"))
        keys = sorted({key for s in stats for key in s})
        row["stats"] = {key: float(np.mean([s[key] for s in stats if key in s])) for key in keys}
        results["arms"][arm] = row
        print(arm, json.dumps(row), flush=True)
        previous = json.loads(args.out.read_text()) if args.out.is_file() else {"arms": {}}
        previous["arms"].update(results["arms"])
        previous["config"] = results["config"]
        atomic_write_text(args.out, json.dumps(previous, indent=1))


if __name__ == "__main__":
    main()
