"""MoExt's `paper` profile against what Li et al. (arXiv:2407.07345) state, so that no deviation
creeps in silently. Values as printed in ../shared/papers/moext.md. Every key of the profile is a
paper setting, a deviation (with its own row in docs/methods/moext.md's deviations table) or a
choice the paper leaves open; beyond the config, the pre-training sources that `auto` stands for
and SMIC's middle-frame apex are checked where they take effect."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mer_moext import pretrain as moext_pretrain
from mer_moext.plugin import MoExt
from mercore import FoldData, Sample, TensorSet
from mercore.testing import Within, paper_config_tests, plain_training
from mercore.testing.layouts import shared_annotations

DOC = Path(__file__).resolve().parents[3] / "docs" / "methods" / "moext.md"
BOTH = "Sec. 4.1.2: 'For the pre-training phase and objective learning stage, the batch size and epoch are set to 20 and 30'"
ADAM = ("Sec. 4.1.2: 'The optimizer chosen for both stages is ADAM with the learning rate of 0.0001, weight decay of "
        "0.0001, and the momentum of 0.9'")
AUGMENT = "Sec. 4.1.2: 'the training data is mirrored and rotated [-10, 10], resulting in ten times the original data size'"
DATA = "Sec. 4.1.2: 'the data in CASME II and CAS(ME)^3-A being used in the pre-training stage'"
SMIC_APEX = ("Sec. 4.1.2: 'Since SMIC does not provide apex frame annotations, the middle frame of the sequence is used "
             "as the apex frame'")
TABLE2 = "Table 2: Concat(M, T_o) 1024x1x1; up-convs 512, 256, 128, 64; Conv block(32) x 5"
PLAIN, PLAIN_OPEN = plain_training("train", ADAM + " and cross-entropy (Sec. 3.5): nothing more")

PAPER = [  # (config key, the paper's value, where it says so[, resolve_config kwargs])
    ("features.size", 224, "Sec. 4.1.2: 'The size of the input image is set to 224 x 224'"),
    ("features.align", "dlib", "Sec. 4.1.2: 'The Dlib algorithm is used for face localization, with the 8th, 9th, "
                               "25th, 40th, and 43rd facial landmarks utilized for alignment and cropping'"),
    ("features.streams.onset.clips", {"extractor": "onset_frame", "params": {}}, "Sec. 3.1: the onset and apex frames are the input"),
    ("features.source", "clips", "Sec. 3.1: frames of the clips (no precomputed release)"),
    ("features.streams.apex.clips", {"extractor": "apex_frame", "params": {}}, "Sec. 3.1: the onset and apex frames are the input"),
    ("pretrain.batch_size", 20, BOTH),
    ("pretrain.epochs", 30, BOTH),
    ("train.batch_size", 20, BOTH),
    ("train.epochs", 30, BOTH),
    ("pretrain.optimizer", "adam", ADAM),
    ("pretrain.lr", 1e-4, ADAM),
    ("pretrain.weight_decay", 1e-4, ADAM),
    ("pretrain.momentum", 0.9, ADAM + " (Adam's beta1)"),
    ("pretrain.weight_averaging.kind", "none", ADAM + ": the weights after the last epoch"),
    ("train.optimizer", "adam", ADAM),
    ("train.lr", 1e-4, ADAM),
    ("train.weight_decay", 1e-4, ADAM),
    ("train.momentum", 0.9, ADAM + " (Adam's beta1)"),
    ("train.scheduler", {"name": "none"}, ADAM + ": one learning rate, no schedule"),
    ("train.early_stopping.patience", None, BOTH + ": a fixed 30 epochs"),
    ("pretrain.a1", 0.5, "Sec. 4.1.2: 'The weight alpha_i (i=1,2) of the loss function are set to 0.5 and 1'"),
    ("pretrain.a2", 1.0, "Sec. 4.1.2: 'The weight alpha_i (i=1,2) of the loss function are set to 0.5 and 1'"),
    ("pretrain.margin", Within(0.2, 0.5), "Sec. 3.5: 'epsilon in [0.2, 0.5]'"),
    ("pretrain.views", 3, "Sec. 4.1.2: 'two operations are randomly selected, that is, m = 3'"),
    ("pretrain.view_ops", ["noise", "contrast", "grayscale"],
     "Sec. 4.1.2: 'adding random noise, increasing image contrast, and converting images to black and white'"),
    ("pretrain.macro_frame", 5, "Sec. 3.1: 'using the 5th frame in the experiment'"),
    ("pretrain.micro_sources", "auto", DATA + " (auto = those two corpora: test_pretraining_sources_are_the_papers)"),
    ("pretrain.fold_clips", "sources", DATA + ": a SAMM or SMIC fold adds none of its own clips"),
    ("pretrain.macro_source", "auto", "Sec. 1 / 4.1.2: macro-expressions of CAS(ME)^3 part A (auto = casme3)"),
    ("pretrain.enabled", True, "Sec. 3.1: pre-training, then objective learning"),
    ("augment.rotate", 10.0, AUGMENT),
    ("augment.copies", 10, AUGMENT),
    ("model.motion_extractor", "learned", "Sec. 3.2.2, eqs. 2-3: M = C2(Concat(C1(|S_a - S_o|), S_a))"),
    ("model.feature_dim", 512, TABLE2 + ": M and T_o are 512 each"),
    ("model.recon_widths", [512, 256, 128, 64], TABLE2),
    ("model.recon_refine_width", 32, TABLE2),
    ("model.recon_refine_blocks", 5, TABLE2),
    ("train.class_weighting", "none", "Sec. 3.5: 'the commonly used cross-entropy loss'"),
    ("validation.subjects", 0.0, "Sec. 4.1.2: a fixed 30 epochs; no model selection is described"),
    ("data.normalize", False, "Table 2: the reconstruction ends in a ReLU and L_re compares pixels"),
    ("data.options", {"apex": "middle"}, SMIC_APEX, {"dataset": "smic"}),
    ("data.options", {"apex": "middle"}, SMIC_APEX + " (the composite's SMIC part)", {"dataset": "megc2019"}),
    *PLAIN,
]

DEVIATIONS = [  # (config key, the paper's value as printed, ours, why)
    ("augment.flip", "mirrored offline: ten fixed copies of the training data", 0.5,
     "each of the ten passes per epoch (augment.copies) draws a flip with p 0.5 and an angle per sample: the "
     "paper's number of optimiser steps, fresh draws instead of fixed copies, no tenfold memory"),
    ("model.motion_kernel", "3 (Table 1: Conv(out, 3, 1))", 1,
     "on the d x 1 x 1 shape vectors a padded 3x3 conv only ever uses its centre tap: 1x1 is the same function "
     "without the 8/9 of the weights that never get a gradient"),
]

OPEN = [  # (config key or section, why the paper leaves it open): docs/methods/moext.md, "Open choices"
    ("model.backbone_widths", "the backbone is not named: a ResNet-18 trunk (choice 1)"),
    ("model.backbone_blocks", "the backbone is not named: a ResNet-18 trunk (choice 1)"),
    ("model.backbone_weights", "no pre-trained weights are named (choice 1)"),
    ("model.branch_conv_blocks", "Fig. 4's branches: 'Conv blocks + fully connected layers', counts open (choice 2)"),
    ("model.branch_fc", "Fig. 4's branches: widths open (choice 2)"),
    ("model.projection_hidden", "the projection head f is not specified (choice 5)"),
    ("model.projection_out", "the projection head f is not specified (choice 5)"),
    ("model.projection_normalize", "the projection head f is not specified (choice 5)"),
    ("model.dropout", "the classifier on M is not specified (choice 9)"),
    ("pretrain.noise_std", "the strength of the view operations is not given (choice 7)"),
    ("pretrain.contrast", "the strength of the view operations is not given (choice 7)"),
    ("pretrain.casme2_root", "where the corpora lie on disk"),
    ("pretrain.casme3_root", "where the corpora lie on disk"),
    ("pretrain.preview", "a diagnostic image of the reconstruction; changes nothing"),
    ("pretrain.weight_averaging", "used only when weight averaging is on (it is off: the paper has none)"),
    ("train.early_stopping.monitor", "unused: no early stopping"),
    ("train.early_stopping.restore_best", "unused: no early stopping"),
    *PLAIN_OPEN,
]

globals().update(paper_config_tests(MoExt(), PAPER, DEVIATIONS, doc=DOC, open_choices=OPEN))


def _fold(dataset: str, n: int = 4) -> FoldData:
    """A fold of ``n`` training clips of ``dataset`` (subjects a, b) and one test clip (subject t)."""
    def part(samples: list[Sample]) -> TensorSet:
        return TensorSet({"onset": torch.zeros(len(samples), 3, 8, 8), "apex": torch.ones(len(samples), 3, 8, 8)},
                         torch.zeros(len(samples), dtype=torch.long), samples)

    train = [Sample(dataset, "ab"[i % 2], f"c{i}") for i in range(n)]
    return FoldData(part(train), None, part([Sample(dataset, "t", "c")]), (f"{dataset}/t",))


@pytest.mark.parametrize("evaluated", ["samm", "smic", "casme2"])
def test_pretraining_sources_are_the_papers(evaluated, monkeypatch):
    """`auto` reads CASME II and CAS(ME)^3 part A micro clips and CAS(ME)^3 macro clips (5th frame as
    apex), whatever corpus is evaluated; a SAMM or SMIC fold adds none of its own clips."""
    from mercore.config import resolve_config

    def no_adapter(name: str):
        pytest.fail(f"corpus_samples is replaced here: nothing should read the {name} adapter")

    read: list[tuple[str, str]] = []
    corpus = {"casme2": Sample("casme2", "a", "m"), "casme3": Sample("casme3", "y", "m", frames=(Path("f"),) * 9)}
    monkeypatch.setattr(moext_pretrain, "corpus_root", lambda name, given, evaluated: Path(name))
    monkeypatch.setattr(moext_pretrain, "corpus_samples",
                        lambda name, root, dataset, kind="micro": read.append((name, kind)) or [corpus[name]])
    config = resolve_config(MoExt(), dataset=evaluated, aligned=True)
    stage = moext_pretrain.MoExtPretrainer.from_config(config["pretrain"])
    data = _fold(evaluated)
    assert stage.sources(data) == ("casme2", "casme3")
    assert {s.dataset for s in stage.micro_samples(data, no_adapter)} == {"casme2", "casme3"}
    (macro,) = stage.macro_samples(data, no_adapter)
    assert read == [("casme2", "micro"), ("casme3", "micro"), ("casme3", "macro")]
    assert macro.dataset == "casme3" and macro.apex == macro.onset + 4
    own = stage.fold_index(data)
    assert own == ([0, 1, 2, 3] if evaluated == "casme2" else [])
    every = moext_pretrain.MoExtPretrainer.from_config({**config["pretrain"], "fold_clips": "all"})
    assert every.fold_index(data) == [0, 1, 2, 3]
    assert stage.sources(_fold("synthetic")) == ("synthetic",)  # the synthetic corpus pre-trains on its own clips


@pytest.mark.skipif(not all((shared_annotations() / f).is_file()
                            for f in ("smic_3class_frames.csv", "casme2_5class_frames.csv")),
                    reason="../shared annotations absent")
@pytest.mark.parametrize("dataset", ["smic", "megc2019"])
def test_smic_apex_is_the_middle_frame_in_the_paper_profile(dataset, tmp_path, monkeypatch):
    """The profile's `data.options` reach the SMIC adapter (alone and in the composite): apex = the
    middle frame of each SMIC clip, not D&C-RoIs spotting."""
    import importlib

    from mercore.runner import prepare
    from mercore.spec import ExecutionOptions, RunSpec
    from mercore.testing.layouts import write_megc2019, write_smic

    monkeypatch.setattr(importlib.import_module("mercore.face.landmarks"), "dlib_installed", lambda: True)
    root = write_smic(tmp_path / "SMIC", frames_per_clip=5) if dataset == "smic" else \
        write_megc2019(tmp_path / "megc2019", frames_per_clip=5)
    spec = RunSpec("moext", dataset=dataset, data_root=root, profile="paper",
                   dataset_options={"sparse_frames": True} if dataset == "megc2019" else {})
    prep = prepare(spec, ExecutionOptions(cache_dir=tmp_path / "cache"))
    smic = [s for s in prep.data.samples if s.dataset == "smic"]
    assert smic and prep.config["data"]["options"] == {"apex": "middle"}
    assert all(s.apex == (len(s.frames) - 1) // 2 for s in smic)
