"""HTNet's `paper` profile against its reference setup, so that no deviation creeps in silently.
The paper (Wang et al., Neurocomputing 2024) is not among ../shared/papers: the rows come from its
public code (main_HTNet.py, Model.py) as docs/methods/htnet.md reads it. Differences are rows of
DEVIATIONS with their reason, named in that doc."""
from __future__ import annotations

from pathlib import Path

from mer_htnet.plugin import HTNet
from mercore.testing import paper_config_tests

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "htnet.md"
CODE = "main_HTNet.py: Adam, lr 5e-5, batch 256, 800 epochs, cross-entropy"

PAPER = [  # (config key, the reference value, where it is stated); resolved for a raw corpus with dlib installed
    ("features.size", 28, "main_HTNet.py: 28x28 u/v/strain maps"),
    ("features.layout", "htnet4", "main_HTNet.py: 14x14 blocks around the eyes and mouth corners, recombined 2x2"),
    ("model.patch_size", 7, "Model.py: 7x7 patches, 16 tokens"),
    ("model.dim", 256, "main_HTNet.py: dim 256 (512, 1024 above)"),
    ("model.heads", 3, "main_HTNet.py: heads 3 (6, 12 above)"),
    ("model.depths", [2, 2, 10], "main_HTNet.py: block_repeats=(2, 2, 10)"),
    ("train.optimizer", "adam", CODE),
    ("train.lr", 5e-5, CODE),
    ("train.batch_size", 256, CODE),
    ("train.epochs", 800, CODE),
    ("train.class_weighting", "none", CODE),
]

DEVIATIONS = [  # (config key, our value, why)
    ("features.landmarks", "auto", "HTNet finds the five points with MTCNN on the apex (fixed points when it fails); "
                                   "auto detects them with dlib on the dlib-aligned apex of raw clips, and uses the "
                                   "fixed points on aligned crops and releases"),
    ("features.align", "dlib", "the release maps HTNet reads are of aligned faces; on raw clips the core's dlib "
                               "alignment stands in for that preprocessing"),
    ("train.early_stopping.patience", None, "main_HTNet.py keeps the best epoch on the test subject (a leak); "
                                                 "here the model after the last epoch"),
]

globals().update(paper_config_tests(HTNet(), PAPER, DEVIATIONS, doc=DOC))
