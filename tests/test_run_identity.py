"""A stored fold is reused only while its labels, inputs, software and config all hold."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

import mercore.environment
from mercore import FeatureRequest, Method, SupervisedTrainer, hookimpl
from mercore.data.casme2 import read_coding_table
from mercore.data.synthetic import SHEET_NAME, generate
from mercore.plugins import load_registry
from mercore.runner import run

torch.set_num_threads(1)
EMOTIONS = ["happiness", "surprise", "disgust", "repression", "others"]
HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


class DiffNet(Method):
    """Linear model on the 8 px gray |apex - onset|: features that read the frames."""

    name = "idnet"

    def default_config(self):
        return {"train": {"optimizer": "adam", "lr": 0.05, "epochs": 3, "batch_size": 4}}

    def features(self, config):
        return {"diff": FeatureRequest("frame_diff", {"size": 8, "gray": True})}

    def build_model(self, config, num_classes):
        return _Net(num_classes)

    def stages(self, config):
        return [SupervisedTrainer.from_config(config["train"])]


class _Net(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, batch):
        return self.fc(batch["diff"].flatten(1))


@hookimpl
def mer_register_methods(register):
    register(DiffNet)


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A 3-subject CASME II-layout corpus whose coding sheet is a CSV the test can edit."""
    root = generate(tmp_path / "corpus", subjects=3, clips_per_subject=4, size=32, min_frames=6, max_frames=8)
    rows = read_coding_table(root / SHEET_NAME)
    (root / SHEET_NAME).unlink()
    write_sheet(root, [[r["subject"], r["filename"], r["onset"], r["apex"], r["offset"], r.get("action_units"),
                        r["emotion"]] for r in rows])
    return root


def sheet(root: Path) -> list[list[str]]:
    with open(root / "CASME2-coding-synthetic.csv", newline="") as f:
        return list(csv.reader(f))[1:]


def write_sheet(root: Path, rows: list[list]) -> None:
    with open(root / "CASME2-coding-synthetic.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])


@pytest.fixture
def run_corpus(corpus, tmp_path):
    import sys

    registry = load_registry(only=[], extra_plugins=[("idnet", sys.modules[__name__])])

    def go(**kwargs):
        return run(DiffNet(), dataset="casme2", data_root=corpus, task="sde5", registry=registry, tracking=False,
                   cache_dir=tmp_path / "cache", progress=False, **kwargs)
    return go


def test_edited_labels_recompute_every_fold_and_say_why(corpus, run_corpus, tmp_path):
    first = run_corpus()
    assert run_corpus().reused_folds == 3
    rows = sheet(corpus)
    for row in [r for r in rows if r[0] == "03"][:3]:  # three labels of one subject changed
        row[6] = EMOTIONS[(EMOTIONS.index(row[6]) + 1) % len(EMOTIONS)]
    write_sheet(corpus, rows)
    edited = run_corpus()
    assert edited.reused_folds == 0  # sub03 trains every other fold: all three depend on its labels
    assert edited.recomputed == {"labels of casme2/sub03 changed": 3}
    assert [f.y_true for f in edited.folds] != [f.y_true for f in first.folds]
    fresh = run_corpus(fresh=True)
    assert [f.y_pred for f in edited.folds] == [f.y_pred for f in fresh.folds]
    assert [f.probabilities for f in edited.folds] == [f.probabilities for f in fresh.folds]


def test_edited_frame_indices_and_frames_recompute(corpus, run_corpus):
    run_corpus()
    rows = sheet(corpus)
    row = next(r for r in rows if r[0] == "02")
    row[3] = str(int(row[3]) + 1 if int(row[3]) < int(row[4]) else int(row[3]) - 1)  # apex moved by one frame
    write_sheet(corpus, rows)
    moved = run_corpus()
    assert moved.recomputed == {"frames or frame indices of casme2/sub02 changed": 3}
    assert run_corpus().reused_folds == 3
    apex = corpus / "CASME2_RAW_selected" / "sub01" / rows[0][1] / f"img{rows[0][3]}.jpg"
    onset = apex.with_name(f"img{rows[0][2]}.jpg")
    apex.write_bytes(onset.read_bytes())  # the apex frame of a clip rewritten
    assert run_corpus().recomputed == {"frames or frame indices of casme2/sub01 changed": 3}


def test_a_new_plugin_or_mercore_version_recomputes(run_corpus, monkeypatch):
    run_corpus()
    real = mercore.environment.distribution_version
    monkeypatch.setattr(mercore.environment, "distribution_version",
                        lambda *names: "9.9.9" if names == ("mercore",) else real(*names))
    upgraded = run_corpus()
    assert upgraded.reused_folds == 0
    assert upgraded.recomputed == {f"mercore {mercore.__version__} -> 9.9.9": 3}
    assert run_corpus().reused_folds == 3


def test_plugin_distribution_version_is_part_of_the_identity(run_corpus, monkeypatch):
    from mercore.plugins import Registry

    monkeypatch.setattr(Registry, "distribution_of", lambda self, method: "mer-idnet")
    versions = {"mer-idnet": "0.1.0"}
    real = mercore.environment.distribution_version
    monkeypatch.setattr(mercore.environment, "distribution_version",
                        lambda *names: versions.get(names[0]) or real(*names))
    run_corpus()
    versions["mer-idnet"] = "0.2.0"
    assert run_corpus().recomputed == {"mer-idnet 0.1.0 -> 0.2.0": 3}
