"""DFR-Net's `paper` profile against what Li, Huang & Wu (CMC 84(1), 2025) state, so that no
deviation creeps in silently. Values as printed in ../shared/papers/dfrnet.md (its tables are
images: only the prose is checked). Every key of the profile is a paper setting, a deviation (with
its own row in docs/methods/dfrnet.md's deviations table) or a choice the paper leaves open."""
from __future__ import annotations

from pathlib import Path

from mer_dfrnet.plugin import DFRNet
from mercore.testing import paper_config_tests, plain_training

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "dfrnet.md"
SETUP = ("Sec. 4.2: 'fine-tuned with a learning rate set at 0.00001, leveraging the Adam optimizer alongside the "
         "cross-entropy loss function'")
STOP = ("Sec. 4.2: 'Training spanned 100 epochs, incorporating an early stopping protocol that kicked in if the "
        "validation loss plateaued for 10 consecutive epochs'")
SPOT = "Sec. 3.1.1: 'we employ the Divide and Conquer based on Regions of Interest (D&C-RoIs) technique' for SMIC's apex"
PLAIN, PLAIN_OPEN = plain_training("train", SETUP + ": nothing more (Sec. 4.2)")

PAPER = [  # (config key, the paper's value, where it says so[, resolve_config kwargs])
    ("train.optimizer", "adam", SETUP),
    ("train.lr", 1e-5, SETUP),
    ("train.momentum", 0.9, SETUP + " (Adam's default beta1)"),
    ("train.weight_decay", 0.0, SETUP + " (no weight decay is named)"),
    ("train.scheduler", {"name": "none"}, SETUP + " (one learning rate, no schedule)"),
    ("train.class_weighting", "none", SETUP),
    ("train.epochs", 100, STOP),
    ("train.early_stopping.patience", 10, STOP),
    ("train.early_stopping.monitor", "val_loss", STOP),
    ("train.batch_size", 32, "Sec. 4.2: 'we maintained a batch size of 32 throughout the training process'"),
    ("data.normalize", True, "Sec. 4.2: 'we normalized the input images using the dataset's mean and standard deviation'"),
    ("model.branches", ["spatial", "temporal", "differential"], "Sec. 3.1.2: apex frame, optical flow, |apex - onset|"),
    ("model.in_channels", {"spatial": 3, "temporal": 3, "differential": 3},
     "Sec. 3.1.2: the RGB apex, Vm = [Vx, Vy, Vz] (eq. 7), |I_apex - I_onset| (eq. 8)"),
    ("model.fusion", "attention", "Sec. 3.2, eqs. 9-10"),
    ("model.fusion_gate", "relu", "Sec. 3.2: the weights come from 'two convolutional layers and ReLU activation functions'"),
    ("model.block_attention", "casa", "Sec. 3.3, eq. 12: SA(CA(.)) inside every residual block"),
    ("model.ca_merge", "before_mlp", "Sec. 3.3, eq. 13: CA(x) = sigma(f2(relu(f1(AvgPool(x) + MaxPool(x)))))"),
    ("model.layers", 3, "Sec. 4.5.5: 'this study selects the configuration with 3 layers'"),
    ("features.apex", {"extractor": "apex_frame", "params": {}}, "Sec. 3.1.2: the apex frame is the spatial branch"),
    ("features.flow.extractor", "flow_uvs", "Sec. 3.1.2, eqs. 4-7: u, v and optical strain"),
    ("features.flow.params.strain", "dfrnet", "Sec. 3.1.2, eq. 7: sqrt(u_x^2 + v_y^2 + 1/2 (u_y^2 + v_x^2))"),
    ("features.diff", {"extractor": "frame_diff", "params": {}}, "Sec. 3.1.2, eq. 8: D = |I_apex - I_onset|"),
    ("data.options", {"apex": "spotting"}, SPOT, {"dataset": "smic"}),
    ("data.options", {"apex": "spotting"}, SPOT + " (the composite's SMIC part)", {"dataset": "megc2019"}),
    *PLAIN,
]

DEVIATIONS: list[tuple] = []  # the config holds the paper's settings; the deviations in code are the doc's (code) rows

OPEN = [  # (config key or section, why the paper leaves it open): docs/methods/dfrnet.md, "Open choices"
    ("features.size", "no input size is given: 128 fits the ~3M parameters and ~50 ms (choice 3)"),
    ("features.align", "no face crop is named: the field's (dlib landmarks, the core's alignment; choice 18)"),
    ("features.flow.params.backend", "the flow algorithm is not named: TV-L1 (choice 4)"),
    ("features.flow.params.source_size", "the flow at the input size, as the paper uses one size (choice 3)"),
    ("validation.subjects", "early stopping on a validation loss, split not given: 20% of the training subjects "
                            "(choice 12)"),
    ("train.early_stopping.restore_best", "which weights early stopping keeps is not said: the best epoch's"),
    ("model.blocks_per_layer", "'standard ResNet': ResNet-18's two BasicBlocks per layer (choice 1)"),
    ("model.shallow_channels", "shallow widths are not given: ~3M parameters in all (choice 1)"),
    ("model.stem", "'standard ResNet' read with its stem (choice 2)"),
    ("model.reduction", "the CA reduction is not given: CBAM's 16 (choice 10)"),
    ("model.sa_kernel", "the SA kernel is not given: CBAM's 7 (choice 10)"),
    ("model.dropout", "no dropout is named"),
    ("augment", "'horizontal flipping and random cropping' without their parameters (choice 13)"),
    *PLAIN_OPEN,
]

globals().update(paper_config_tests(DFRNet(), PAPER, DEVIATIONS, doc=DOC, open_choices=OPEN))
