"""benchmarks/composite_fit.py: which folds it measures and which loss records it reads are fixed
by rule, so they are checked here on small made-up inputs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def fit_script():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import composite_fit
        yield composite_fit
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_folds_leave_out_the_first_subject_of_each_part(fit_script):
    groups = ["smic/s02", "casme2/sub05", "samm/011", "casme2/sub02", "smic/s01", "samm/006", "casme2/sub02"]
    folds = fit_script.first_subject_folds(groups)
    left_out = [{groups[i] for i in f.test} for f in folds]
    assert left_out == [{"casme2/sub02"}, {"samm/006"}, {"smic/s01"}]
    for fold in folds:
        assert not {groups[i] for i in fold.train} & {groups[i] for i in fold.test}


def test_losses_are_those_of_the_kept_training_run(fit_script):
    # a fit check that tried a first rate (3 epochs) and kept the second: the last 3 records count
    history = [("train/loss", 1.1, 0), ("train/loss", 1.0, 1), ("train/loss", 0.9, 2), ("train/fit_check_ratio", 0.8, 0),
               ("train/loss", 1.2, 0), ("train/acc", 0.5, 0), ("train/loss", 0.7, 1), ("train/loss", 0.3, 2),
               ("val/loss", 9.0, 2)]
    assert fit_script.losses(history, 3) == (1.2, 0.3)
