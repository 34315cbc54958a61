"""MPFNet's `paper` profile against what Ma et al. (arXiv:2506.09735) state, so that no deviation
creeps in silently. Values as printed in ../shared/papers/mpfnet.md. Every key of the profile is a
paper setting, a deviation (with its own row in docs/methods/mpfnet.md's deviations table) or a
choice the paper leaves open. Table I's rows are pinned here as config; tests/test_mpfnet.py checks
that they give Table I's counts, per corpus and for the composite."""
from __future__ import annotations

from pathlib import Path

from mer_mpfnet.method import MPFNet
from mercore.testing import paper_config_tests, plain_training

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "mpfnet.md"
PLTN = ("Sec. 4.3: 'an SGD optimizer with a momentum of 0.9 and a learning rate of 0.01. Training was conducted for 60 "
        "epochs with a batch size of 128 and a weight decay of 5x10^-4'")
PLSM = ("Sec. 4.3: '80 epochs with an initial learning rate of 0.001, which was reduced by a factor of ten every 10 "
        "epochs. The SGD optimizer, with a momentum of 0.9 and a weight decay of 5x10^-4, was maintained'")
META = ("Sec. 4.3: 'we utilize the SGD optimizer with a fixed learning rate of 0.05 and a momentum parameter of 0.9. "
        "Each training batch contains 4 episodes'")
GAMMA = ("Sec. 5.4: 'the optimal values for MPFNet-P were found to be 0.8, 0.7, 0.6, and 0.7 on the SMIC, CASME II, "
         "SAMM, and MEGC2019-CD datasets'")
TABLE_I = "Table I: phi 1~m per class (negative / positive / surprise) of"
PLAIN_GFE, OPEN_GFE = plain_training("gfe", PLTN + ": nothing more", kind="triplet")
PLAIN_AFE, OPEN_AFE = plain_training("afe.train", PLSM + ": nothing more")
PLAIN_META, OPEN_META = plain_training("meta_learning", META + ": nothing more", kind="episodic")

PAPER = [  # (config key, the paper's value, where it says so[, resolve_config kwargs])
    ("features.size", 128, "Sec. 3.2: 'The cropped facial regions are resized to 128x128 pixels'"),
    ("features.source_size", None, "Sec. 3.2: flow and differences of the 128 x 128 crops, 'R^{128x128x2x10}'"),
    ("features.length", 11, "Sec. 3.2.1 / 5.4: 'fixed-length ME sequences of 11 frames', 'we set L = 11'"),
    ("features.frame_difference", "absolute", "Sec. 3.2.2, eq. 3: Delta I_t^c = |I_{t+1}^c - I_t^c|"),
    ("gfe.enabled", True, "Sec. 3.3.2: the GFE is pre-trained in a triplet network"),
    ("gfe.optimizer", "sgd", PLTN),
    ("gfe.momentum", 0.9, PLTN),
    ("gfe.lr", 0.01, PLTN),
    ("gfe.epochs", 60, PLTN),
    ("gfe.batch_size", 128, PLTN),
    ("gfe.weight_decay", 5e-4, PLTN),
    ("gfe.scheduler", None, PLTN + " (a schedule is named for the AFE stage only)"),
    ("afe.enabled", True, "Sec. 3.3.3: the AFE is pre-trained on the magnified, balanced set"),
    ("afe.train.optimizer", "sgd", PLSM),
    ("afe.train.momentum", 0.9, PLSM),
    ("afe.train.lr", 0.001, PLSM),
    ("afe.train.epochs", 80, PLSM),
    ("afe.train.weight_decay", 5e-4, PLSM),
    ("afe.train.scheduler", {"name": "step", "step_size": 10, "gamma": 0.1}, PLSM),
    ("afe.train.class_weighting", "none", "Sec. 3.3.3: the magnified set is the class balancing"),
    ("afe.train.early_stopping.patience", None, PLSM + ": a fixed 80 epochs"),
    ("afe.magnification.plan", "table", "Sec. 3.3.3 / Table I: phi ranges per dataset and class"),
    ("afe.magnification.table.smic", {"negative": 8, "positive": 12, "surprise": 14}, TABLE_I + " SMIC-HS: 1~8, 1~12, 1~14"),
    ("afe.magnification.table.casme2", {"negative": 4, "positive": 12, "surprise": 14},
     TABLE_I + " CASME II: 1~4, 1~12, 1~14"),
    ("afe.magnification.table.samm", {"negative": 3, "positive": 9, "surprise": 14}, TABLE_I + " SAMM: 1~3, 1~9, 1~14"),
    ("afe.magnification.max_phi", 14, "Sec. 3.3.3: 'we set the optimal maximum magnification factor to phi = 14'"),
    ("afe.magnification.max_copies", None, "Table I: every integer phi of the range ((1 + m) n clips per class)"),
    ("afe.magnification.include_raw", True, "Table I: the counts hold the raw clips (CASME II negative 88 -> 440 = 5 x 88)"),
    ("meta_learning.enabled", True, "Sec. 3.4: multi-prior fusion meta-learning"),
    ("meta_learning.optimizer", "sgd", META),
    ("meta_learning.lr", 0.05, META),
    ("meta_learning.momentum", 0.9, META),
    ("meta_learning.scheduler", None, META + " ('fixed')"),
    ("meta_learning.weight_decay", 0.0, META + " (no weight decay, which Sec. 4.3 names for the other two stages)"),
    ("meta_learning.episodes_per_batch", 4, META),
    ("meta_learning.k_shot", 5, "Sec. 3.5: 'we set K to 5'; Sec. 4.3: 3-way 5-shot and 5-way 5-shot"),
    ("meta_learning.n_way", None, "Sec. 4.3: 3-way for three classes, 5-way for five (null: every class of the fold)"),
    ("model.variant", "c", "Sec. 3.4.2: MPFNet-C, the cascade", {"variant": "c"}),
    ("model.variant", "p", "Sec. 3.4.1: MPFNet-P, the parallel encoders", {"variant": "p"}),
    ("model.gamma", 0.8, GAMMA, {"variant": "p", "dataset": "smic"}),
    ("model.gamma", 0.7, GAMMA, {"variant": "p", "dataset": "casme2"}),
    ("model.gamma", 0.6, GAMMA, {"variant": "p", "dataset": "samm"}),
    ("model.gamma", 0.7, GAMMA, {"variant": "p", "dataset": "megc2019"}),
    ("validation.subjects", 0.0, "Sec. 4.3: fixed epoch counts; no model selection is described"),
    *PLAIN_GFE, *PLAIN_AFE, *PLAIN_META,
]

DEVIATIONS = [  # (config key, the paper's value as printed, ours, why)
    ("features.align", "Alibaba Cloud's face detection, alignment and cropping (Sec. 3.2)", "dlib",
     "the service cannot be called offline; dlib's landmarks and the core's alignment stand in"),
    ("features.backend", "FlowNet 2.0 (Sec. 3.2.2)", "tvl1", "FlowNet 2.0 has no weights offline; TV-L1"),
    ("model.head_grid", "the last feature map flattened into the linear layer (Sec. 3.3.1)", [2, 4, 4],
     "~1.3 billion weights at 128 px; an adaptive average pool to 2x4x4 keeps a coarse layout"),
    ("model.embedding_bn", "the network ends in a linear layer (Sec. 3.3.1)", True,
     "without it the embeddings share a common component and all cosines to the centroids become equal"),
    ("model.scale", "1: softmax(-d) (eq. 18), d the cosine distance of eqs. 11-13 and 17", 10.0,
     "softmax over raw cosines in [-1, 1] is near uniform; 10 is the common temperature"),
    ("gfe.reduction", "sum over the anchors (eq. 6)", "mean",
     "a sum multiplies each SGD step at lr 0.01 by the 128 triplets of a batch; the printed sum is read as notation"),
    ("meta_learning.reduction", "sum over the queries (eq. 19)", "mean",
     "a sum multiplies each SGD step at lr 0.05 by the 15-25 queries of an episode; the printed sum is read as notation"),
]

OPEN = [  # (config key or section, why the paper leaves it open): docs/methods/mpfnet.md, "Open choices"
    ("model.stem_channels", "CA-I3D widths are not given: I3D's"),
    ("model.width", "CA-I3D widths are not given: I3D's"),
    ("model.embedding_dim", "the size of the final linear layer is not given"),
    ("model.ca_reduction", "Coordinate Attention's reduction is not given: Hou et al.'s 32"),
    ("model.ca_mode", "how CA extends to 3D is not given"),
    ("model.dropout", "no dropout is named"),
    ("model.cascade_channels", "how Concat(x_s, GFE(x_s)) joins a vector to a video is not given"),
    ("gfe.margin", "the triplet margin alpha is not given: FaceNet's 0.2"),
    ("gfe.mining", "the triplet mining is not given"),
    ("gfe.normalize", "whether embeddings are normalised for the triplet loss is not given"),
    ("afe.train.batch_size", "Sec. 4.3 gives a batch size for the GFE stage only"),
    ("afe.train.early_stopping.monitor", "unused: no early stopping"),
    ("afe.train.early_stopping.restore_best", "unused: no early stopping"),
    ("afe.magnification.majority_max", "the rule for corpora and tasks Table I does not list (its CASME II negative)"),
    ("afe.magnification.per_class", "explicit ranges for a task Table I does not list"),
    ("meta_learning.epochs", "episode counts are not given"),
    ("meta_learning.episodes_per_epoch", "episode counts are not given"),
    ("meta_learning.q_query", "the query size is not given"),
    ("meta_learning.centroids", "how the final LOSO prediction forms its centroids is not given"),
    ("meta_learning.scale", "null: the model's scale (model.scale) applies"),
    ("data.normalize", "no input normalisation is named"),
    ("data.options", "no dataset option: the adapters' apex (annotated; SMIC's middle frame, the paper names none)"),
    *OPEN_GFE, *OPEN_AFE, *OPEN_META,
]

globals().update(paper_config_tests(MPFNet(), PAPER, DEVIATIONS, doc=DOC, open_choices=OPEN))
