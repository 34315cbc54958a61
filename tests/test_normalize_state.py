"""A fold's normalisation statistics save and load themselves (the file `mer predict` reads)."""
from __future__ import annotations

import pytest
import torch

from mercore.evaluation.normalize import Normalizer
from mercore.io import atomic_torch_save


def test_statistics_round_trip_through_the_fold_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    inputs = {"flow": torch.randn(10, 3, 4, 4, generator=g) * 2 + 1, "apex": torch.rand(10, 3, 8, 8, generator=g)}
    norm = Normalizer.fit(inputs)
    norm.save(tmp_path / "norm.pt")
    loaded = Normalizer.load(tmp_path / "norm.pt")
    for name, x in inputs.items():
        assert torch.equal(loaded(name, x), norm(name, x))
    flat = norm("flow", inputs["flow"]).transpose(0, 1).flatten(1)
    assert flat.mean(1).abs().max() < 1e-5 and (flat.std(1) - 1).abs().max() < 1e-4


def test_a_file_of_other_content_is_refused(tmp_path):
    atomic_torch_save(tmp_path / "norm.pt", {"flow": torch.zeros(3)})
    with pytest.raises(ValueError, match="not normalisation statistics"):
        Normalizer.load(tmp_path / "norm.pt")
