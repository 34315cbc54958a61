"""HTNet's `paper` profile against its reference setup, so that no deviation creeps in silently.
The paper (Wang et al., Neurocomputing 2024) is not among ../shared/papers: the rows come from its
public code (main_HTNet.py, Model.py) as docs/methods/htnet.md reads it. Every key of the profile
is a reference setting, a deviation (with its own row in that doc's deviations table) or an open
choice."""
from __future__ import annotations

from pathlib import Path

from mer_htnet.plugin import HTNet
from mercore.testing import paper_config_tests, plain_training

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "htnet.md"
CODE = "main_HTNet.py: Adam, lr 5e-5, batch 256, 800 epochs, cross-entropy"
MAPS = "main_HTNet.py reads the STSTNet release's 28x28 u/v/strain maps (TV-L1 on the aligned face, then reduced)"
PLAIN, PLAIN_OPEN = plain_training("train", CODE + ": nothing more")

PAPER = [  # (config key, the reference value, where it is stated)
    ("features.size", 28, "main_HTNet.py: 28x28 u/v/strain maps"),
    ("features.streams.flow.clips.params.layout", "htnet4", "main_HTNet.py: 14x14 blocks around the eyes and mouth corners, recombined 2x2"),
    ("features.streams.flow.clips.params.backend", "tvl1", MAPS),
    ("model.image_size", 28, "main_HTNet.py: 28x28 input"),
    ("model.in_channels", 3, "main_HTNet.py: u, v, strain"),
    ("model.patch_size", 7, "Model.py: 7x7 patches, 16 tokens"),
    ("model.levels", 3, "Model.py: 16 -> 4 -> 1 blocks"),
    ("model.dim", 256, "main_HTNet.py: dim 256 (512, 1024 above)"),
    ("model.heads", 3, "main_HTNet.py: heads 3 (6, 12 above)"),
    ("model.depths", [2, 2, 10], "main_HTNet.py: block_repeats=(2, 2, 10)"),
    ("model.mlp_mult", 4, "Model.py: MLP ratio 4"),
    ("model.dropout", 0.0, "Model.py: dropout 0"),
    ("train.optimizer", "adam", CODE),
    ("train.lr", 5e-5, CODE),
    ("train.momentum", 0.9, CODE + " (Adam's default beta1)"),
    ("train.weight_decay", 0.0, CODE + " (Adam's default: none)"),
    ("train.scheduler", {"name": "none"}, CODE + " (no schedule)"),
    ("train.batch_size", 256, CODE),
    ("train.epochs", 800, CODE),
    ("train.class_weighting", "none", CODE),
    ("data.normalize", False, "main_HTNet.py feeds the maps as read"),
    ("validation.subjects", 0.0, "main_HTNet.py: no validation split"),
    *PLAIN,
]

DEVIATIONS = [  # (config key, the reference value, ours, why)
    ("features.streams.flow.clips.params.landmarks", "MTCNN on the apex (fixed points when it fails)", "auto",
     "auto detects the five points with dlib on the dlib-aligned apex of raw clips, and uses the fixed points on "
     "aligned crops and releases"),
    ("features.streams.flow.clips.params.source_size", "the aligned face at its full resolution, maps reduced to 28 (the release maps)", 128,
     "the release's crop size is not stated; 128 keeps sub-pixel motion (TV-L1 0.2 s a pair)"),
    ("train.early_stopping.patience", "the best epoch on the test subject (main_HTNet.py)", None,
     "selecting on the test subject is a leak; here the model after the last epoch"),
]

OPEN = [  # (config key or section, why it is open)
    ("features.source", "clips: the maps computed from a raw corpus; a release is read as is (inputs section)"),
    ("features.streams.flow.clips.extractor", "roi_flow: the core's extractor of the whole-face map's blocks (the layout above)"),
    ("features.streams.flow.clips.params.source", "clips: flow computed here from the frames"),
    ("features.streams.flow.release", "a release's map, cut the same way at its own 28 px"),
    ("features.align", "the release maps are of aligned faces; the alignment is not named: the core's dlib alignment"),
    ("train.early_stopping.monitor", "unused: no early stopping"),
    ("train.early_stopping.restore_best", "unused: no early stopping"),
    ("data.options", "no dataset option"),
    *PLAIN_OPEN,
]

globals().update(paper_config_tests(HTNet(), PAPER, DEVIATIONS, doc=DOC, open_choices=OPEN))
