"""RRMFNet + PT's `paper` profile against what Zhao et al. (Cognitive Computation) state in the
surviving experiments section (../shared/papers/rrmfnet-pt_experiments-only.md), so that no
deviation creeps in silently. Every key of the profile is a paper setting, a deviation (with its
own row in docs/methods/rrmfnet.md's deviations table) or a choice the surviving text leaves open:
the optimiser and the epoch count among them."""
from __future__ import annotations

from pathlib import Path

from mer_rrmfnet.plugin import RRMFNet
from mercore.testing import paper_config_tests, plain_training

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "rrmfnet.md"
SETUP = "Experiments: 'The learning rate was fixed at 0.0005, and the batch size was set to 64'"
DLIB = ("Experiments: 'the Dlib library was used to crop and resize the apex frame images ... and the optical flow maps "
        "were generated using the TV-L1 algorithm'")
PT = "Fig. 13: GJ, GN, HF, RM; 'ALL represents the simultaneous application of all four operations'"
PLAIN, PLAIN_OPEN = plain_training("train", SETUP + "; eq. 14: cross-entropy")
PLAIN = [row for row in PLAIN if row[0] != "train.perturbation.enabled"]  # PT is the paper's: rows below
PLAIN_OPEN = [row for row in PLAIN_OPEN if row[0] != "train.perturbation"]

PAPER = [  # (config key, the paper's value, where it says so); resolved for a raw corpus with dlib installed
    ("train.lr", 5e-4, SETUP),
    ("train.batch_size", 64, SETUP),
    ("train.scheduler", {"name": "none"}, SETUP + " (fixed: no schedule)"),
    ("train.class_weighting", "none", "eq. 14: 'All experiments used the CrossEntropyLoss function'"),
    ("features.align", "dlib", DLIB),
    ("features.streams.flow.clips.params.backend", "tvl1", DLIB),
    ("features.streams.flow.clips.extractor", "flow_uvs", DLIB + "; Table 4: the flow maps (u, v, strain: docs/methods/rrmfnet.md)"),
    ("features.streams.apex.clips.extractor", "apex_frame", DLIB + "; Table 4: the apex frames"),
    ("model.streams", ["flow", "apex"], "Table 4: 'the combined input can achieve optimal performance'"),
    ("model.resizer", "inception", "Table 6: Inception-v2 in the resizer (Model C on)"),
    ("model.resizer_blocks", 2, "Table 12: 'When n = 2, the model performance reached its best'"),
    ("model.neck", "eurepgfpn", "Table 7: 'the model using EuRepGFPN (Model D) outperforms ... RepGFPN (Model C)'"),
    ("model.cbam", True, "Table 8: 'Model F (K = 7) outperforms Model D (without CBAM enabled)'"),
    ("model.cbam_kernel", 7, "Table 8: 'the CBAM module with a convolution kernel size of 7 is more suitable'"),
    ("model.fusion_blocks", 3, "Table 11: 'When the repetition count n = 3, the recognition performance was optimal'"),
    ("train.perturbation.enabled", True, "Tables 13-14: RRMFNet + PT"),
    ("train.perturbation.every", 20, "Fig. 12: 'we set the perturbation interval to be 20'"),
    ("train.perturbation.color_jitter.enabled", True, PT),
    ("train.perturbation.gaussian_noise.enabled", True, PT),
    ("train.perturbation.hflip.enabled", True, PT),
    ("train.perturbation.random_mask.enabled", True, PT),
    *PLAIN,
]

DEVIATIONS: list[tuple] = []  # none: what the text leaves open is in the open choices

OPEN = [  # (config key or section, why the surviving text leaves it open): docs/methods/rrmfnet.md
    ("train.optimizer", "not stated: Adam"),
    ("train.momentum", "not stated: Adam's default beta1"),
    ("train.weight_decay", "not stated: none"),
    ("train.epochs", "not stated: 100, room for four perturbation phases"),
    ("train.early_stopping", "not mentioned: a fixed schedule, the final weights"),
    ("validation.subjects", "not mentioned: no validation split"),
    ("train.perturbation.length", "a phase's length is not given: one epoch"),
    ("train.perturbation.image_streams", "which streams each operation touches is not given"),
    ("train.perturbation.flow_streams", "which streams each operation touches is not given"),
    ("train.perturbation.color_jitter", "the operations' strengths are not given"),
    ("train.perturbation.gaussian_noise", "the operations' strengths are not given"),
    ("train.perturbation.hflip", "the operations' strengths are not given"),
    ("train.perturbation.random_mask", "the operations' strengths are not given"),
    ("features.size", "the input size is not given (the architecture's reconstruction)"),
    ("features.source", "clips: the streams computed from a raw corpus (a release: inputs section)"),
    ("features.streams.apex.clips.params", "no further apex parameters"),
    ("features.streams.flow.release", "a release's flow map, read as is"),
    ("features.streams.apex.release", "a release's apex crop, read as is"),
    ("model.in_channels", "the streams' channels: u, v, strain and RGB (the text does not list them)"),
    ("model.resize_to", "input and network sizes are not given: 112 -> 224 (doc row 2)"),
    ("model.resizer_filters", "the resizer's width is not given: Talebi & Milanfar's n = 16"),
    ("model.backbone_widths", "the backbone is not named in the surviving text"),
    ("model.backbone_blocks", "the backbone is not named in the surviving text"),
    ("model.neck_channels", "RepGFPN's widths are not given: DAMO-YOLO's"),
    ("model.neck_depth", "RepGFPN's depth is not given: DAMO-YOLO's"),
    ("model.neck_hidden_ratio", "RepGFPN's ratio is not given: DAMO-YOLO-S's"),
    ("model.aab_channels", "the AAB's width is not given"),
    ("model.cbam_reduction", "CBAM's reduction is not given: its 16"),
    ("model.fusion_channels", "the FusionBlock's width is not given"),
    ("model.reduce_kernel", "Table 9's values are lost: 'Method 2' reconstructed (doc row 9)"),
    ("model.reduce_stride", "Table 9's values are lost: 'Method 2' reconstructed (doc row 9)"),
    ("model.reduce_padding", "Table 9's values are lost: 'Method 2' reconstructed (doc row 9)"),
    ("model.reduce_channels", "Table 9's values are lost: 'Method 2' reconstructed (doc row 9)"),
    ("model.reduce_pool", "Table 9's values are lost: 'Method 2' reconstructed (doc row 9)"),
    ("model.mlp_hidden", "the classifier head is not given"),
    ("model.dropout", "the classifier head is not given"),
    ("model.width", "1.0: the widths above, ~43M parameters as the paper reports"),
    ("data.normalize", "no input normalisation is named"),
    ("data.options", "no dataset option"),
    *PLAIN_OPEN,
]

globals().update(paper_config_tests(RRMFNet(), PAPER, DEVIATIONS, doc=DOC, open_choices=OPEN))
