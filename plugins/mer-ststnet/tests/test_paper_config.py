"""STSTNet's `paper` profile against its reference setup, so that no deviation creeps in silently.
The paper (Liong et al., FG 2019) is not among ../shared/papers: the architecture rows come from
the brief's summary of it (../shared/METHODS.md), the training rows from the public STSTNet code
the plugin follows (docs/methods/ststnet.md). Every key of the profile is a reference setting, a
deviation (with its own row in that doc's deviations table) or an open choice."""
from __future__ import annotations

from pathlib import Path

from mer_ststnet.plugin import STSTNet
from mercore.testing import paper_config_tests, plain_training

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "ststnet.md"
CODE = "public STSTNet code: Adam, lr 5e-5, batch 256, 500 epochs, cross-entropy, the last epoch kept"
PLAIN, PLAIN_OPEN = plain_training("train", CODE + ": nothing more")

PAPER = [  # (config key, the reference value, where it is stated)
    ("features.size", 28, "METHODS.md: 'the 28x28x3 u/v/strain input'"),
    ("features.streams.flow.clips.extractor", "flow_uvs", "METHODS.md: the onset -> apex u/v/strain map"),
    ("features.streams.flow.clips.params.backend", "tvl1", "METHODS.md: optical flow onset -> apex (TV-L1, the MER standard)"),
    ("features.streams.flow.clips.params.normalize", "minmax", "the release's 8-bit maps: each channel scaled to [0, 1] per clip"),
    ("model.filters", [3, 5, 8], "METHODS.md: 'three parallel conv streams (3, 5, 8 filters of 3x3)'"),
    ("model.batch_norm", True, "public code: BatchNorm after each stream's ReLU (docs item 2)"),
    ("model.dropout", 0.5, "public code: dropout 0.5 after each stream's pooling (docs item 2)"),
    ("train.optimizer", "adam", CODE),
    ("train.lr", 5e-5, CODE),
    ("train.momentum", 0.9, CODE + " (Adam's default beta1)"),
    ("train.weight_decay", 0.0, CODE + " (Adam's default: none)"),
    ("train.scheduler", {"name": "none"}, CODE + " (no schedule)"),
    ("train.batch_size", 256, CODE),
    ("train.epochs", 500, CODE),
    ("train.early_stopping.patience", None, CODE + " (docs item 3: a fixed epoch count, leak-free)"),
    ("train.class_weighting", "none", CODE),
    ("data.normalize", False, "public code: the maps as read"),
    ("validation.subjects", 0.0, CODE + ": no validation split"),
    *PLAIN,
]

DEVIATIONS = [  # (config key, the reference value, ours, why)
    ("features.streams.flow.clips.params.source_size", "the aligned face at its full resolution, maps reduced to 28 (the release maps)", 128,
     "the release's crop size is not stated; 128 keeps sub-pixel motion (TV-L1 0.2 s a pair)"),
]

OPEN = [  # (config key or section, why it is open)
    ("features.source", "clips: the map computed from a raw corpus; a release is read as is (inputs section)"),
    ("features.streams.flow.clips.params.pool", "with source_size: u, v and strain computed there, then the maps reduced (docs item 5)"),
    ("features.streams.flow.release", "a release's maps are read as they are"),
    ("features.align", "the release maps are of aligned faces; the alignment is not named: the core's dlib alignment"),
    ("train.early_stopping.monitor", "unused: no early stopping"),
    ("train.early_stopping.restore_best", "unused: no early stopping"),
    ("data.options", "no dataset option"),
    *PLAIN_OPEN,
]

globals().update(paper_config_tests(STSTNet(), PAPER, DEVIATIONS, doc=DOC, open_choices=OPEN))
