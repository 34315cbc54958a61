"""A stored fold is reused only while its labels, inputs, software and config all hold."""
from __future__ import annotations

from dataclasses import replace

import pytest

import mercore.environment
from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec

EMOTIONS = ["happiness", "surprise", "disgust", "repression", "others"]


@pytest.fixture
def run_corpus(corpus, diff_registry, tmp_path):
    def go(**options):
        return run(RunSpec("idnet", dataset="casme2", data_root=corpus, task="sde5"),
                   replace(ExecutionOptions(tracking=False, cache_dir=tmp_path / "cache", progress=False), **options),
                   registry=diff_registry)
    return go


def test_edited_labels_recompute_every_fold_and_say_why(sheet, run_corpus):
    first = run_corpus()
    assert run_corpus().reused_folds == 3
    rows = sheet.read()
    for row in [r for r in rows if r[0] == "03"][:3]:  # three labels of one subject changed
        row[6] = EMOTIONS[(EMOTIONS.index(row[6]) + 1) % len(EMOTIONS)]
    sheet.write(rows)
    edited = run_corpus()
    assert edited.reused_folds == 0  # sub03 trains every other fold: all three depend on its labels
    assert edited.recomputed == {"labels of casme2/sub03 changed": 3}
    assert [f.y_true for f in edited.folds] != [f.y_true for f in first.folds]
    fresh = run_corpus(fresh=True)
    assert [f.y_pred for f in edited.folds] == [f.y_pred for f in fresh.folds]
    assert [f.probabilities for f in edited.folds] == [f.probabilities for f in fresh.folds]


def test_edited_frame_indices_and_frames_recompute(corpus, sheet, run_corpus):
    run_corpus()
    rows = sheet.read()
    row = next(r for r in rows if r[0] == "02")
    row[3] = str(int(row[3]) + 1 if int(row[3]) < int(row[4]) else int(row[3]) - 1)  # apex moved by one frame
    sheet.write(rows)
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
