"""Classify one new clip with a fold model of a finished run (``mer predict``).

The run folder supplies the config (so the features and the model are built exactly as in
training) and the class names; the checkpoint is one fold's ``folds/NNN/model.pt``, loaded with
``weights_only=True``. Prototype models (MPFNet) keep their centroids as buffers in the state
dict, so they load the same way.

Normalisation: a run with ``data.normalize: true`` standardised its inputs with the training
statistics of each fold. When the fold folder holds them as ``norm.pt`` (``Normalizer.save``)
they are applied; otherwise prediction refuses, since unnormalised inputs would give
meaningless probabilities. Runs with ``data.normalize: false`` need nothing.

Methods trained on a precomputed-flow release (``megc2019-flow``) read release files, not
frames: their CLIP is the clip's flow map ``<release>/u_v_os/<stem>.png``, with its apex crop
found beside it as in the release (``<release>/apex/<stem>.jpg``).
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

from .data.frames import read_image, write_image
from .evaluation.normalize import Identity, Normalizer
from .io import load_checkpoint
from .nn.base import ContractError, check_modules
from .sample import Sample

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
ALIGN_CHOICES = ("none", "dlib")
RELEASE_SOURCE = "the release's precomputed maps"


class PredictError(ValueError):
    """A clip, run folder or checkpoint that cannot be used; the message says why."""


@dataclass
class Prediction:
    """Class probabilities for one clip and the key frames they were computed from."""

    probabilities: dict[str, float]
    onset: int
    apex: int
    frames: int
    apex_source: str  # "given", "spotted (D&C-RoIs)", "largest difference to the onset" or RELEASE_SOURCE

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def clip_frames(clip: Path, work_dir: Path) -> list[Path]:
    """Frame files of ``clip``: the images of a folder in natural order (img2 before img10), or
    the frames of a video file written as PNGs into ``work_dir``."""
    clip = Path(clip)
    if clip.is_dir():
        frames = sorted((p for p in clip.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not frames:
            raise PredictError(f"{clip} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return frames
    if not clip.is_file():
        raise PredictError(f"clip not found: {clip}")
    import cv2

    capture = cv2.VideoCapture(str(clip))
    frames = []
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            path = work_dir / f"frame{len(frames):05d}.png"
            cv2.imwrite(str(path), bgr)
            frames.append(path)
    finally:
        capture.release()
    if not frames:
        raise PredictError(f"cannot read frames from {clip} (not a video OpenCV can decode?)")
    return frames


def release_sample(clip: Path) -> Sample | None:
    """The release clip whose flow map is ``clip`` (``<release>/u_v_os/<stem>.png``, apex crop at
    ``<release>/apex/<stem>.jpg``), or None when ``clip`` is not a release map."""
    clip = Path(clip)
    if not (clip.is_file() and clip.parent.name == "u_v_os" and clip.suffix.lower() == ".png"):
        return None
    extras = {"flow_image": clip}
    apex = clip.parent.parent / "apex" / f"{clip.stem}.jpg"
    if apex.is_file():  # only methods that read the apex crop need it; they name it when it is missing
        extras["apex_image"] = apex
    return Sample("predict", "release", clip.stem, extras=extras)


def align_frames(frames: Sequence[Path], work_dir: Path, size: int = 256) -> list[Path]:
    """Every frame warped with the dlib alignment of the first (onset) frame, written as PNGs."""
    from .face import align_clip

    images = [read_image(p) for p in frames]
    aligned = align_clip(images, size, backend="dlib", reference=0)
    out = []
    for i, image in enumerate(aligned):
        path = work_dir / f"aligned{i:05d}.png"
        write_image(path, image)
        out.append(path)
    return out


def largest_difference_apex(frames: Sequence[Path], onset: int) -> int:
    """The frame after ``onset`` whose mean absolute difference to the onset is largest."""
    reference = read_image(frames[onset])
    diffs = [float(np.abs(read_image(p) - reference).mean()) if i > onset else -1.0 for i, p in enumerate(frames)]
    return int(np.argmax(diffs)) if len(frames) > onset + 1 else onset


def spot(frames: Sequence[Path], onset: int, align: str) -> tuple[int, str]:
    """Apex position by D&C-RoIs (:mod:`mercore.spotting`), or the largest-difference frame when
    spotting fails (e.g. no landmarks)."""
    try:
        from .spotting import spot_apex

        return onset + spot_apex(list(frames[onset:]), landmark_backend="dlib" if align == "dlib" else "canonical"), \
            "spotted (D&C-RoIs)"
    except Exception:  # spotting is best effort here; the fallback below always works
        return largest_difference_apex(frames, onset), "largest difference to the onset"


def run_dir_of(checkpoint: Path) -> Path:
    """``<run_dir>/folds/NNN/model.pt`` -> ``<run_dir>``."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.parent.name != "folds":
        raise PredictError(f"cannot tell the run folder of {checkpoint} (expected <run>/folds/NNN/model.pt); "
                           "pass --run RUN_DIR")
    return checkpoint.parent.parent.parent


def _normalizer(checkpoint: Path, config: dict[str, Any]) -> Normalizer | Identity:
    if not (config.get("data") or {}).get("normalize"):
        return Identity()
    path = checkpoint.with_name("norm.pt")
    if not path.is_file():
        raise PredictError(f"the run used data.normalize: true but {path} (the fold's training statistics) is "
                           "missing; predict needs it to feed the model what it was trained on")
    state = _load(path, "the fold's normalisation statistics")
    try:
        return Normalizer.from_state(state)
    except ValueError:
        raise PredictError(f"{path} does not hold normalisation statistics ({{stream: {{mean, std}}}})") from None


def _load(path: Path, what: str) -> Any:
    """``load_checkpoint`` with a one-line error for a file that is corrupt, truncated or not a
    state dict (``weights_only=True`` refuses pickled objects: the message says so too)."""
    try:
        return load_checkpoint(path)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, zip errors ...
        reason = "it holds Python objects besides tensors, which are never unpickled (they could run code)" \
            if "Weights only load failed" in str(exc) else "not a PyTorch file, or a truncated one"
        raise PredictError(f"cannot read {path} ({what}): {reason}") from None


def trained_model(checkpoint: Path, run_dir: Path | None) -> tuple[Path, dict[str, Any], list[str]]:
    """(state-dict file, config, class names) of a ``mer fit`` model folder, or of one fold's
    ``model.pt`` with its run folder (``run_dir``, default: the one holding the checkpoint)."""
    from .final import MODEL_INFO

    if checkpoint.is_dir():
        info, config_path, weights = checkpoint / MODEL_INFO, checkpoint / "config.yaml", checkpoint / "model.pt"
        if not (info.is_file() and config_path.is_file() and weights.is_file()):
            raise PredictError(f"{checkpoint} is not a model folder of `mer fit` (model.pt, config.yaml, {MODEL_INFO})")
        return weights, yaml.safe_load(config_path.read_text()), json.loads(info.read_text())["classes"]
    if not checkpoint.is_file():
        raise PredictError(f"checkpoint not found: {checkpoint}")
    run_dir = Path(run_dir) if run_dir else run_dir_of(checkpoint)
    config_path, summary_path = run_dir / "artifacts" / "config.yaml", run_dir / "artifacts" / "summary.json"
    if not config_path.is_file() or not summary_path.is_file():
        raise PredictError(f"{run_dir} is not a finished run folder (artifacts/config.yaml, summary.json)")
    return checkpoint, yaml.safe_load(config_path.read_text()), json.loads(summary_path.read_text())["classes"]


def predict_clip(plugin: str | None, checkpoint: Path | str, clip: Path | str, *, run_dir: Path | str | None = None,
                 onset: int | None = None, apex: int | None = None, variant: str | None = None,
                 align: str = "none", registry: Any = None) -> Prediction:
    """Class probabilities of ``clip`` under ``checkpoint``: a fold model (``<run>/folds/NNN/model.pt``)
    or a ``mer fit`` model folder. ``plugin`` and ``variant``, when given, are checked against it."""
    from .features.store import build_inputs
    from .runner import load_method

    if align not in ALIGN_CHOICES:
        raise PredictError(f"unknown --align {align!r}; choose one of: {', '.join(ALIGN_CHOICES)}")
    checkpoint, config, classes = trained_model(Path(checkpoint), Path(run_dir) if run_dir else None)
    trained_method, trained_variant = config["meta"]["method"], config["meta"].get("variant")
    plugin = plugin or trained_method
    if trained_method != plugin:
        raise PredictError(f"{checkpoint}: trained {trained_method!r}, not {plugin!r}")
    if variant is not None and variant != trained_variant:
        raise PredictError(f"the checkpoint is variant {trained_variant!r} of {plugin}, not {variant!r}")
    registry, method = load_method(registry, plugin)
    state = _load(checkpoint, "the fold model")  # before the features: a bad file fails fast
    norm = _normalizer(checkpoint, config)

    release = release_sample(Path(clip))
    if release is None and "clips" not in method.inputs:
        raise PredictError(f"{plugin} reads a precomputed-flow release, not frames: give the clip's flow map "
                           f"<release>/u_v_os/<stem>.png (its apex crop is read from <release>/apex/), not {clip}")
    if release is not None and (onset is not None or apex is not None or align != "none"):
        raise PredictError("--onset, --apex and --align do not apply to a release map: its flow was computed "
                           "from the release's own onset and apex frames")
    with tempfile.TemporaryDirectory(prefix="mer-predict-") as tmp:
        if release is not None:
            store = registry.feature_store(None)
            inputs = build_inputs(store, method.features(config), [release], progress=False)
            return _classify(plugin, method, config, classes, checkpoint, state, norm.apply(inputs),
                             Prediction({}, 0, 0, 1, RELEASE_SOURCE))
        work = Path(tmp)
        frames = clip_frames(Path(clip), work)
        if align == "dlib":
            frames = align_frames(frames, work)
        first = 0 if onset is None else onset
        if not 0 <= first < len(frames):
            raise PredictError(f"--onset {first} is outside the clip's {len(frames)} frames")
        if apex is None:
            peak, source = spot(frames, first, align)
        else:
            peak, source = apex, "given"
        if not first <= peak < len(frames):
            raise PredictError(f"apex {peak} must lie between the onset {first} and the last frame {len(frames) - 1}")
        sample = Sample("predict", "clip", Path(clip).stem, frames=tuple(frames), onset=first, apex=peak,
                        offset=len(frames) - 1)
        store = registry.feature_store(None)
        inputs = build_inputs(store, method.features(config), [sample], progress=False)
    return _classify(plugin, method, config, classes, checkpoint, state, norm.apply(inputs),
                     Prediction({}, first, peak, len(frames), source))


def _classify(plugin: str, method: Any, config: dict[str, Any], classes: list[str], checkpoint: Path,
              state: Any, inputs: Any, prediction: Prediction) -> Prediction:
    """``prediction`` with the class probabilities of ``inputs`` (one clip) under ``state``."""
    model = method.build_model(config, len(classes))
    try:  # the contract `mer run` checks, so a broken plugin is one line here too
        check_modules(model, f"method {plugin!r}")
    except ContractError as exc:
        raise PredictError(str(exc)) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:  # other keys or shapes than this model's
        reason = str(exc).strip().splitlines()[0]
        raise PredictError(f"{checkpoint} does not fit {plugin}'s model as the run configured it: {reason[:200]}") \
            from None
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(inputs).float(), dim=1)[0]  # (num_classes,)
    prediction.probabilities = dict(zip(classes, probs.tolist()))
    return prediction
