"""DFR-Net's `paper` profile against what Li, Huang & Wu (CMC 84(1), 2025) state, so that no
deviation creeps in silently. Values as printed in ../shared/papers/dfrnet.md (its tables are
images: only the prose is checked); every difference is a row of DEVIATIONS with its reason, and
named in docs/methods/dfrnet.md."""
from __future__ import annotations

from pathlib import Path

from mer_dfrnet.plugin import DFRNet
from mercore.testing import paper_config_tests

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "dfrnet.md"
SETUP = ("Sec. 4.2: 'fine-tuned with a learning rate set at 0.00001, leveraging the Adam optimizer alongside the "
         "cross-entropy loss function'")
STOP = ("Sec. 4.2: 'Training spanned 100 epochs, incorporating an early stopping protocol that kicked in if the "
        "validation loss plateaued for 10 consecutive epochs'")
SPOT = "Sec. 3.1.1: 'we employ the Divide and Conquer based on Regions of Interest (D&C-RoIs) technique' for SMIC's apex"

PAPER = [  # (config key, the paper's value, where it says so[, resolve_config kwargs])
    ("train.optimizer", "adam", SETUP),
    ("train.lr", 1e-5, SETUP),
    ("train.class_weighting", "none", SETUP),
    ("train.epochs", 100, STOP),
    ("train.early_stopping.patience", 10, STOP),
    ("train.early_stopping.monitor", "val_loss", STOP),
    ("train.batch_size", 32, "Sec. 4.2: 'we maintained a batch size of 32 throughout the training process'"),
    ("data.normalize", True, "Sec. 4.2: 'we normalized the input images using the dataset's mean and standard deviation'"),
    ("model.branches", ["spatial", "temporal", "differential"], "Sec. 3.1.2: apex frame, optical flow, |apex - onset|"),
    ("model.fusion", "attention", "Sec. 3.2, eqs. 9-10"),
    ("model.block_attention", "casa", "Sec. 3.3, eq. 12: SA(CA(.)) inside every residual block"),
    ("model.layers", 3, "Sec. 4.5.5: 'this study selects the configuration with 3 layers'"),
    ("features.flow.extractor", "flow_uvs", "Sec. 3.1.2, eqs. 4-7: u, v and optical strain"),
    ("features.diff.extractor", "frame_diff", "Sec. 3.1.2, eq. 8: D = |I_apex - I_onset|"),
    ("data.options", {"apex": "spotting"}, SPOT, {"dataset": "smic"}),
    ("data.options", {"apex": "spotting"}, SPOT + " (the composite's SMIC part)", {"dataset": "megc2019"}),
]

DEVIATIONS = [  # (config key, our value, why)
    ("features.align", "dlib", "the paper names no face crop; the field's practice (dlib landmarks, the core's "
                               "alignment) on raw corpora, as the other clip methods"),
    ("features.size", 128, "the paper gives no input size; 128 fits its ~3M parameters and ~50 ms"),
    ("validation.subjects", 0.2, "the paper early-stops on a validation loss without saying which split: 20% of "
                                 "each fold's training subjects, never the test subject"),
]

globals().update(paper_config_tests(DFRNet(), PAPER, DEVIATIONS, doc=DOC))
