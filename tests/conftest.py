"""Shared fixtures: a toy corpus and method that need no frames, a small CASME II-layout corpus
with an editable CSV sheet and a method that reads its frames, and an isolated MLflow store."""
from __future__ import annotations

import csv
import hashlib
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mercore
from mercore import FeatureRequest, LoadedDataset, Method, Sample, SupervisedTrainer, hookimpl

torch.set_num_threads(1)


class ToyDataset(mercore.Dataset):
    """6 subjects x 9 clips; the class is in the toy feature, plus per-subject offsets and noise."""

    name = "toy"
    tasks = {"megc3": mercore.MEGC3}
    requires_root = False

    def load(self, root, options):
        samples = []
        for s in range(6):
            for c in range(9):
                label = [0, 0, 0, 0, 1, 1, 2, 2, 0][c]
                samples.append(Sample("toy", f"s{s}", f"c{c}", emotion=str(label), labels={"megc3": label}))
        return LoadedDataset(self.name, "megc3", mercore.MEGC3, samples)


class ToySignal(mercore.FeatureExtractor):
    name = "toy_signal"

    def __init__(self, noise: float = 0.5):
        super().__init__(noise=noise)

    def extract(self, sample, features):
        seed = int(hashlib.sha256(sample.key.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        x = rng.normal(0, self._params["noise"], 8).astype(np.float32)
        x[sample.labels["megc3"]] += 2.0
        x[3:] += int(sample.subject[1:])  # a subject offset: normalisation must cope with it
        return x


class ToyMethod(Method):
    name = "toy"
    variants = {"a": "plain", "b": "plain, other width"}
    default_variant = "a"

    def default_config(self):
        return {"features": {"noise": 0.5}, "model": {"hidden": 16},
                "train": {"optimizer": "adam", "lr": 0.05, "epochs": 30, "batch_size": 16},
                "data": {"normalize": True}, "variants": {"b": {"model": {"hidden": 8}}}}

    def profiles(self):
        return {"quick": {"train": {"epochs": 10}}}

    def features(self, config):
        return {"x": FeatureRequest("toy_signal", {"noise": config["features"]["noise"]})}

    def build_model(self, config, num_classes):
        net = nn.Sequential(nn.Linear(8, config["model"]["hidden"]), nn.ReLU(), nn.Linear(config["model"]["hidden"], num_classes))
        return StreamNet(net, "x")

    def stages(self, config):
        return [SupervisedTrainer.from_config(config["train"])]


class StreamNet(nn.Module):
    """``net`` on one input stream of the batch: the model of the tests' small methods."""

    def __init__(self, net: nn.Module, stream: str) -> None:
        super().__init__()
        self.net = net
        self.stream = stream

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch[self.stream])


def make_toy_plugin():
    module = types.ModuleType("toy_plugin")

    @hookimpl
    def mer_register_methods(register):
        register(ToyMethod)

    @hookimpl
    def mer_register_datasets(register):
        register(ToyDataset)

    @hookimpl
    def mer_register_feature_extractors(register):
        register(ToySignal)

    module.mer_register_methods = mer_register_methods
    module.mer_register_datasets = mer_register_datasets
    module.mer_register_feature_extractors = mer_register_feature_extractors
    return module


@pytest.fixture
def toy_registry():
    from mercore.plugins import load_registry

    return load_registry(only=[], extra_plugins=[("toy", make_toy_plugin())])


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory) -> Path:
    """Create and migrate one SQLite MLflow store per session (migrations cost seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    mlflow.tracking.MlflowClient().search_experiments()
    return path


@pytest.fixture
def mlflow_uri(_migrated_store, tmp_path) -> str:
    """A fresh copy of the migrated store for one test."""
    dest = tmp_path / "mlflow.db"
    shutil.copy(_migrated_store, dest)
    return f"sqlite:///{dest}"


@pytest.fixture
def toy_cli(toy_registry, tmp_path, monkeypatch):
    """`mer run --plugin toy --dataset toy ...` through the real command, in an empty cache."""
    import mercore.runner
    from click.testing import CliRunner

    from mercore.cli import cli

    monkeypatch.setattr(mercore.runner, "load_method", lambda registry, name: (toy_registry, toy_registry.method(name)))
    cache, db = tmp_path / "cache", tmp_path / "mlflow.db"

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["run", "--plugin", "toy", "--dataset", "toy", "--cache-dir", str(cache),
                                        "--tracking-uri", f"sqlite:///{db}", "-q", *args])
    invoke.cache, invoke.db, invoke.uri = cache, db, f"sqlite:///{db}"
    return invoke


class DiffNet(Method):
    """Linear model on the 8 px gray |apex - onset|: features that read the frames."""

    name = "idnet"

    def default_config(self):
        return {"train": {"optimizer": "adam", "lr": 0.05, "epochs": 3, "batch_size": 4}}

    def features(self, config):
        return {"diff": FeatureRequest("frame_diff", {"size": 8, "gray": True})}

    def build_model(self, config, num_classes):
        return StreamNet(nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes)), "diff")

    def stages(self, config):
        return [SupervisedTrainer.from_config(config["train"])]


@pytest.fixture
def diff_registry():
    from mercore.plugins import load_registry

    module = types.ModuleType("idnet_plugin")

    @hookimpl
    def mer_register_methods(register):
        register(DiffNet)

    module.mer_register_methods = mer_register_methods
    return load_registry(only=[], extra_plugins=[("idnet", module)])


SHEET_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
SHEET = "CASME2-coding-synthetic.csv"


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A 3-subject CASME II-layout corpus (4 clips each) whose coding sheet is a CSV to edit."""
    from mercore.data.casme2 import read_coding_table
    from mercore.data.synthetic import SHEET_NAME, generate

    root = generate(tmp_path / "corpus", subjects=3, clips_per_subject=4, size=32, min_frames=6, max_frames=8)
    rows = read_coding_table(root / SHEET_NAME)
    (root / SHEET_NAME).unlink()
    write_sheet(root, [[r["subject"], r["filename"], r["onset"], r["apex"], r["offset"], r.get("action_units"),
                        r["emotion"]] for r in rows])
    return root


def write_sheet(root: Path, rows: list[list]) -> None:
    with open(root / SHEET, "w", newline="") as f:
        csv.writer(f).writerows([SHEET_HEADER, *rows])


class Sheet:
    """The rows of the corpus's coding sheet (strings, header left out), to read and rewrite."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self) -> list[list[str]]:
        with open(self.root / SHEET, newline="") as f:
            return list(csv.reader(f))[1:]

    def write(self, rows: list[list]) -> None:
        write_sheet(self.root, rows)


@pytest.fixture
def sheet(corpus) -> Sheet:
    return Sheet(corpus)
