"""`mer predict`: a fold model of a tiny run classifies clips of its held-out subject."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import mercore.runner
from mercore import FeatureRequest, LoadOptions, Method, SupervisedTrainer, hookimpl
from mercore.cli import cli
from mercore.evaluation.results import RunResult
from mercore.plugins import load_registry
from mercore.predict import PredictError, clip_frames, largest_difference_apex, predict_clip
from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec
from tests.conftest import StreamNet

torch.set_num_threads(1)
OPTIONS = {"subjects": 3, "clips_per_subject": 4, "size": 64}


class DiffNet(Method):
    """Linear model on the 16 px gray |apex - onset|; data.normalize is configurable."""

    name = "diffnet"

    def default_config(self):
        return {"model": {"size": 16}, "train": {"optimizer": "adam", "lr": 0.01, "epochs": 3, "batch_size": 4}}

    def features(self, config):
        return {"diff": FeatureRequest("frame_diff", {"size": config["model"]["size"], "gray": True})}

    def build_model(self, config, num_classes):
        return StreamNet(nn.Sequential(nn.Flatten(), nn.Linear(config["model"]["size"] ** 2, num_classes)), "diff")

    def stages(self, config):
        return [SupervisedTrainer.from_config(config["train"])]


@hookimpl
def mer_register_methods(register):
    register(DiffNet)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LOSO run on 3 synthetic subjects and its corpus."""
    import sys

    registry = load_registry(only=[], extra_plugins=[("diffnet", sys.modules[__name__])])
    cache = tmp_path_factory.getbasetemp() / "mer-contract-cache"  # shared with the contract kit's corpus
    result = run(RunSpec(DiffNet(), dataset="synthetic", dataset_options=OPTIONS, overrides={"run.device": "cpu"},
                         subjects=["sub01", "sub02", "sub03"]),
                 ExecutionOptions(cache_dir=cache, progress=False, tracking=False), registry=registry)
    data = registry.dataset("synthetic").load(None, LoadOptions(cache_dir=cache, extra=OPTIONS))
    return registry, result, {s.key: s for s in data.samples}


def test_predict_reproduces_the_fold_prediction_of_a_held_out_clip(trained):
    registry, result, samples = trained
    fold = result.folds[0]
    sample = samples[fold.keys[0]]
    clip = Path(sample.frames[0]).parent
    pred = predict_clip("diffnet", fold.checkpoint, clip, onset=sample.onset, apex=sample.apex, registry=registry)
    assert list(pred.probabilities) == list(result.class_names)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(list(pred.probabilities.values()), fold.probabilities[0], atol=1e-5)
    assert pred.apex_source == "given" and pred.frames == len(sample.frames)


def test_predict_spots_the_apex_and_reads_videos(trained, tmp_path):
    registry, result, samples = trained
    fold = result.folds[1]
    sample = samples[fold.keys[0]]
    video = tmp_path / "clip.avi"
    first = cv2.imread(str(sample.frames[0]))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (first.shape[1], first.shape[0]))
    for path in sample.frames:
        writer.write(cv2.imread(str(path)))
    writer.release()
    pred = predict_clip("diffnet", fold.checkpoint, video, registry=registry)
    assert pred.frames == len(sample.frames) and pred.onset == 0 and 0 < pred.apex < pred.frames
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_cli_prints_probabilities(trained, monkeypatch):
    registry, result, samples = trained
    monkeypatch.setattr(mercore.runner, "load_method", lambda reg, name: (registry, registry.method(name)))
    fold = result.folds[2]
    sample = samples[fold.keys[0]]
    out = CliRunner().invoke(cli, ["predict", "--plugin", "diffnet", "--checkpoint", fold.checkpoint,
                                   str(Path(sample.frames[0]).parent), "--apex", str(sample.apex)])
    assert out.exit_code == 0, out.output
    probs = {line.split()[0]: float(line.split()[1]) for line in out.output.splitlines()[1:-1]}
    assert set(probs) == set(result.class_names) and sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert "prediction: " in out.output


def test_clear_errors(trained, tmp_path):
    registry, result, samples = trained
    checkpoint = Path(result.folds[0].checkpoint)
    clip = Path(samples[result.folds[0].keys[0]].frames[0]).parent
    with pytest.raises(PredictError, match="trained 'diffnet', not 'dfrnet'"):
        predict_clip("dfrnet", checkpoint, clip, registry=registry)
    with pytest.raises(PredictError, match="has no variants|not 'x'"):
        predict_clip("diffnet", checkpoint, clip, variant="x", registry=registry)
    with pytest.raises(PredictError, match="holds no image files"):
        predict_clip("diffnet", checkpoint, tmp_path, registry=registry)
    stray = tmp_path / "model.pt"
    stray.write_bytes(checkpoint.read_bytes())
    with pytest.raises(PredictError, match="pass --run"):
        predict_clip("diffnet", stray, clip, registry=registry)


def normalised_run(result: RunResult, tmp_path: Path) -> Path:
    """A run folder in ``tmp_path`` with ``result``'s config and summary but ``data.normalize: true``;
    returns where its first fold's checkpoint goes, for the test to write (with or without ``norm.pt``)."""
    run_dir = tmp_path / "run"
    (run_dir / "artifacts").mkdir(parents=True)
    (run_dir / "folds" / "000").mkdir(parents=True)
    for name in ("config.yaml", "summary.json"):
        text = (result.run_dir / "artifacts" / name).read_text()
        (run_dir / "artifacts" / name).write_text(text.replace("normalize: false", "normalize: true"))
    return run_dir / "folds" / "000" / "model.pt"


def test_normalised_runs_need_the_fold_statistics(trained, tmp_path):
    registry, result, samples = trained
    checkpoint = normalised_run(result, tmp_path)
    checkpoint.write_bytes(Path(result.folds[0].checkpoint).read_bytes())
    clip = Path(samples[result.folds[0].keys[0]].frames[0]).parent
    with pytest.raises(PredictError, match="norm.pt"):
        predict_clip("diffnet", checkpoint, clip, registry=registry)
    from mercore.io import atomic_torch_save

    atomic_torch_save(checkpoint.with_name("norm.pt"), {"diff": {"mean": torch.zeros(1, 1, 1), "std": torch.ones(1, 1, 1)}})
    plain = predict_clip("diffnet", result.folds[0].checkpoint, clip, registry=registry, apex=5)
    normed = predict_clip("diffnet", checkpoint, clip, registry=registry, apex=5)  # identity statistics
    assert normed.probabilities == pytest.approx(plain.probabilities)


def test_frames_in_natural_order_and_fallback_apex(tmp_path):
    from mercore import write_image

    for i in (1, 2, 10):
        write_image(tmp_path / f"img{i}.jpg", np.full((8, 8, 3), 0.1 * i))
    frames = clip_frames(tmp_path, tmp_path)
    assert [p.name for p in frames] == ["img1.jpg", "img2.jpg", "img10.jpg"]
    assert largest_difference_apex(frames, 0) == 2


@pytest.mark.parametrize("damage", ["truncated", "not torch", "pickle"])
def test_a_corrupt_checkpoint_or_norm_file_is_one_line(trained, tmp_path, damage, monkeypatch):
    import pickle

    registry, result, samples = trained
    monkeypatch.setattr(mercore.runner, "load_method", lambda reg, name: (registry, registry.method(name)))
    checkpoint = normalised_run(result, tmp_path)
    good = Path(result.folds[0].checkpoint).read_bytes()
    bad = {"truncated": good[: len(good) // 2], "not torch": b"hello" * 100,
           "pickle": pickle.dumps(Path("x"))}[damage]  # weights_only refuses objects
    clip = str(Path(samples[result.folds[0].keys[0]].frames[0]).parent)
    args = ["predict", "--plugin", "diffnet", "--checkpoint", str(checkpoint), clip, "--apex", "3"]
    checkpoint.write_bytes(bad)
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 1 and "Traceback" not in out.output
    reason = "it holds Python objects besides tensors" if damage == "pickle" else "not a PyTorch file, or a truncated"
    assert out.output.startswith(f"Error: cannot read {checkpoint} (the fold model): {reason}")
    assert len(out.output.strip().splitlines()) == 1
    checkpoint.write_bytes(good)
    checkpoint.with_name("norm.pt").write_bytes(bad)
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 1 and len(out.output.strip().splitlines()) == 1
    assert out.output.startswith(f"Error: cannot read {checkpoint.with_name('norm.pt')} (the fold's normalisation ")


def test_a_checkpoint_of_another_model_is_one_line(trained, tmp_path):
    registry, result, samples = trained
    from mercore.io import atomic_torch_save

    other = Path(result.run_dir) / "folds" / "000" / "other.pt"
    atomic_torch_save(other, {"net.1.weight": torch.zeros(2, 3)})
    stray = Path(result.folds[0].checkpoint)
    saved = stray.read_bytes()
    try:
        stray.write_bytes(other.read_bytes())
        with pytest.raises(PredictError, match=r"does not fit diffnet's model as the run configured it"):
            predict_clip("diffnet", stray, Path(samples[result.folds[0].keys[0]].frames[0]).parent, registry=registry,
                         apex=3)
    finally:
        stray.write_bytes(saved)
        other.unlink()


def test_fit_trains_on_every_evaluated_clip_for_predict_model(trained, tmp_path):
    from mercore.final import fit_final

    registry, result, samples = trained
    cache = result.run_dir.parent.parent
    first = fit_final(result.run_dir, dataset_options=OPTIONS, out=tmp_path / "a", cache_dir=cache,
                      registry=registry, progress=False)
    info = json.loads((first / "model.json").read_text())
    evaluated = sum(len(f.keys) for f in result.folds)
    assert info["samples"] == evaluated and info["subjects"] == 3
    assert info["train_samples"] + info["validation_samples"] == evaluated
    assert info["classes"] == list(result.class_names) and info["evaluated"]["uf1"] == pytest.approx(result.scores().uf1)
    again = fit_final(result.run_dir, dataset_options=OPTIONS, out=tmp_path / "b", cache_dir=cache,
                      registry=registry, progress=False)
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (first, again))
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded: the same model twice
    fold_model = torch.load(result.folds[0].checkpoint, weights_only=True)
    assert not all(torch.equal(a[k], fold_model[k]) for k in a)  # more subjects than any fold's
    sample = samples[result.folds[0].keys[0]]
    pred = predict_clip(None, first, Path(sample.frames[0]).parent, apex=sample.apex, registry=registry)
    assert list(pred.probabilities) == list(result.class_names)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(PredictError, match="trained 'diffnet', not 'dfrnet'"):
        predict_clip("dfrnet", first, Path(sample.frames[0]).parent, registry=registry)


def test_fit_refuses_data_without_the_evaluated_clips(trained, tmp_path):
    from mercore.config import ConfigError
    from mercore.final import fit_final

    registry, result, _ = trained
    with pytest.raises(ConfigError, match="are not in these data"):
        fit_final(result.run_dir, dataset_options={**OPTIONS, "subjects": 2}, out=tmp_path / "m",
                  cache_dir=tmp_path / "cache", registry=registry, progress=False)
    assert not (tmp_path / "m").exists()
    unfinished = tmp_path / "unfinished"
    (unfinished / "folds").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a finished run folder"):
        fit_final(unfinished, registry=registry)


def test_cli_fit_runs_and_predict_model(trained, tmp_path, monkeypatch):
    registry, result, samples = trained
    monkeypatch.setattr(mercore.runner, "load_method", lambda reg, name: (registry, registry.method(name)))
    cache = result.run_dir.parent.parent
    options = [a for k, v in OPTIONS.items() for a in ("-D", f"{k}={v}")]
    fitted = CliRunner().invoke(cli, ["fit", str(result.run_dir), *options, "--out", str(tmp_path / "model"),
                                      "--cache-dir", str(cache), "-q"])
    assert fitted.exit_code == 0, fitted.output
    assert f"Model folder: {tmp_path / 'model'}" in fitted.output
    sample = samples[result.folds[0].keys[0]]
    out = CliRunner().invoke(cli, ["predict", "--model", str(tmp_path / "model"), str(Path(sample.frames[0]).parent)])
    assert out.exit_code == 0, out.output
    assert "prediction: " in out.output
    both = CliRunner().invoke(cli, ["predict", "--model", str(tmp_path / "model"), "--checkpoint",
                                    result.folds[0].checkpoint, str(Path(sample.frames[0]).parent)])
    assert both.exit_code == 2 and "give one of --model" in both.output
    listed = CliRunner().invoke(cli, ["runs", "--cache-dir", str(cache)])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if result.run_dir.name in line)
    assert "| diffnet |" in row and "| 3/3 |" in row and f"{result.scores().uf1:.4f}" in row


def test_predict_checks_the_model_contract_as_run_does(trained, monkeypatch):
    from mercore import Encoder

    class Widthless(Encoder):
        def forward(self, batch):
            return batch

    registry, result, samples = trained
    monkeypatch.setattr(DiffNet, "build_model", lambda self, config, n: nn.Sequential(Widthless()))
    clip = Path(samples[result.folds[0].keys[0]].frames[0]).parent
    with pytest.raises(PredictError, match="out_features"):
        predict_clip("diffnet", result.folds[0].checkpoint, clip, registry=registry, apex=5)


def test_fit_gives_keys_newer_than_the_run_their_defaults(trained, tmp_path):
    """A run made before `train.weight_averaging` existed fits as it would have (the default is off)."""
    import shutil

    import yaml

    from mercore.config import ConfigError
    from mercore.final import fit_final

    registry, result, _ = trained
    cache = result.run_dir.parent.parent
    older = tmp_path / "runs" / result.run_dir.name
    shutil.copytree(result.run_dir, older, ignore=shutil.ignore_patterns("*.pt"))
    config_path = older / "artifacts" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    del config["train"]["weight_averaging"]
    config_path.write_text(yaml.safe_dump(config))
    kwargs = dict(dataset_options=OPTIONS, cache_dir=cache, registry=registry, progress=False)
    now, then = fit_final(result.run_dir, out=tmp_path / "now", **kwargs), fit_final(older, out=tmp_path / "then", **kwargs)
    info = json.loads((then / "model.json").read_text())
    assert "train.weight_averaging.kind" in info["defaults_added"]
    assert json.loads((now / "model.json").read_text())["defaults_added"] == []
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (now, then))
    assert all(torch.equal(a[k], b[k]) for k in a)
    config["train"]["no_such_key"] = 1
    config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="no_such_key"):
        fit_final(older, out=tmp_path / "bad", **kwargs)


class ReleaseNet(Method):
    """Linear model on the release's 8 px flow map: a method that reads no frames."""

    name = "releasenet"
    inputs = ("flow-release",)

    def default_config(self):
        return {"train": {"optimizer": "adam", "lr": 0.01, "epochs": 2, "batch_size": 4}}

    def features(self, config):
        return {"flow": FeatureRequest("release_flow", {"size": 8})}

    def build_model(self, config, num_classes):
        return StreamNet(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes)), "flow")

    def stages(self, config):
        return [SupervisedTrainer.from_config(config["train"])]


class _ReleasePlugin:
    @hookimpl
    def mer_register_methods(self, register):
        register(ReleaseNet)


def test_a_release_model_classifies_a_release_map_as_its_fold_did(tmp_path):
    from mercore.testing import RELEASE_ROWS
    from mercore.testing.layouts import write_flow_release

    registry = load_registry(only=[], extra_plugins=[("releasenet", _ReleasePlugin())])
    release = write_flow_release(tmp_path / "release", RELEASE_ROWS)
    result = run(RunSpec(ReleaseNet(), dataset="megc2019-flow", data_root=release, overrides={"run.device": "cpu"}),
                 ExecutionOptions(cache_dir=tmp_path / "cache", progress=False, tracking=False), registry=registry)
    fold = result.folds[0]
    subject, clip = fold.keys[0].split("/")[1:]
    flow_map = release / "u_v_os" / f"{subject}_{clip}.png"
    pred = predict_clip("releasenet", fold.checkpoint, flow_map, registry=registry)
    np.testing.assert_allclose(list(pred.probabilities.values()), fold.probabilities[0], atol=1e-5)

    with pytest.raises(PredictError, match=r"^releasenet reads a precomputed-flow release, not frames: give"):
        predict_clip("releasenet", fold.checkpoint, tmp_path, registry=registry)
    with pytest.raises(PredictError, match=r"^--onset, --apex and --align do not apply to a release map"):
        predict_clip("releasenet", fold.checkpoint, flow_map, apex=3, registry=registry)
