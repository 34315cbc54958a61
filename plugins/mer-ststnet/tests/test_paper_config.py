"""STSTNet's `paper` profile against its reference setup, so that no deviation creeps in silently.
The paper (Liong et al., FG 2019) is not among ../shared/papers: the architecture rows come from
the brief's summary of it (../shared/METHODS.md), the training rows from the public STSTNet code
the plugin follows (docs/methods/ststnet.md). Differences are rows of DEVIATIONS with their reason."""
from __future__ import annotations

from pathlib import Path

from mer_ststnet.plugin import STSTNet
from mercore.testing import paper_config_tests

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "ststnet.md"
CODE = "public STSTNet code: Adam, lr 5e-5, batch 256, 500 epochs, cross-entropy"

PAPER = [  # (config key, the reference value, where it is stated); resolved for a raw corpus with dlib installed
    ("features.size", 28, "METHODS.md: 'the 28x28x3 u/v/strain input'"),
    ("features.backend", "tvl1", "METHODS.md: optical flow onset -> apex (TV-L1, the MER standard)"),
    ("features.align", "dlib", "the releases' maps are of aligned faces (docs/methods/ststnet.md, Input)"),
    ("model.filters", [3, 5, 8], "METHODS.md: 'three parallel conv streams (3, 5, 8 filters of 3x3)'"),
    ("train.optimizer", "adam", CODE),
    ("train.lr", 5e-5, CODE),
    ("train.batch_size", 256, CODE),
    ("train.epochs", 500, CODE),
    ("train.class_weighting", "none", CODE),
]

DEVIATIONS = [  # (config key, our value, why)
    ("train.early_stopping.patience", None, "the public loop keeps the best epoch on the test subject (a "
                                                 "leak); here the model after the last epoch"),
]

globals().update(paper_config_tests(STSTNet(), PAPER, DEVIATIONS, doc=DOC))
