"""Precomputed-flow releases of the MEGC2019 composite (apex crops + normalised u/v/strain maps).

Layout (as in the public release; ``../shared/data/megc2019-flow-smic`` is its SMIC part)::

    <root>/labels.csv                      dataset,subject,clip,label   (label 0 negative, 1 positive, 2 surprise)
    <root>/apex/<subject>_<clip>.jpg       224x224 apex crop
    <root>/u_v_os/<subject>_<clip>.png     28x28, RGB = (u, v, optical strain), min-max normalised

Samples have no frames; ``extras = {"apex_image": ..., "flow_image": ...}`` feed the
``release_apex`` / ``release_flow`` extractors. ``Sample.subject`` is written as the corpus's own
ground truth writes it, except SAMM numbers which are zero-padded (``6`` -> ``006``) to match the
SAMM adapter; file names use the subject exactly as ``labels.csv`` writes it. Every file is
checked for that size and three 8-bit channels as the release is read: a row whose file is
missing, corrupt or of another shape is a bad row (left out under ``--skip-invalid``).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..labels import MEGC3
from ..sample import Sample
from .casme2 import _clip_name
from .dataset import Dataset, DatasetError, LoadedDataset, LoadOptions, choose_task, collect_samples, data_root
from .folders import inside

CORPORA = ("casme2", "samm", "smic")
HEADER = ("dataset", "subject", "clip", "label")
#: (height, width, channels) of each file of a release, as the public release writes them
RELEASE_FILES = {"apex_image": (224, 224, 3), "flow_image": (28, 28, 3)}


def read_release_image(path: Path, what: str) -> np.ndarray:
    """The release file ``path`` (``what``: ``apex_image`` or ``flow_image``) as RGB float32 in
    [0, 1], checked to have the release's size and channels: a map of another size, or a gray one,
    would otherwise be resized or widened without a word and change the clip's prediction.

    Raises:
        ValueError: naming the file, what it holds and what a release holds there.
    """
    import cv2

    h, w, c = RELEASE_FILES[what]
    expected = f"a flow release holds {h}x{w} 8-bit RGB images there"
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be read ({exc.strerror})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"{what} {path} cannot be decoded (corrupt or not an image); {expected}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.shape[:2] != (h, w) or channels != c or image.dtype != np.uint8:
        raise ValueError(f"{what} {path} is {image.shape[0]}x{image.shape[1]} with {channels} channel(s) of "
                         f"{image.dtype.itemsize * 8} bits; {expected}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def load_flow_release(root: Path | str, options: LoadOptions, name: str = "megc2019-flow") -> LoadedDataset:
    """Read a precomputed-flow release (task ``megc3``).

    Raises:
        DatasetError: naming ``labels.csv`` and the row, unless ``options.skip_invalid``.
    """
    root = data_root(root)
    task = choose_task(name, MegcFlowReleaseDataset.tasks, options.task)
    labels_csv = root / "labels.csv"
    if not labels_csv.is_file():
        raise DatasetError(f"{labels_csv} not found (a flow release has labels.csv, apex/ and u_v_os/)")
    for sub in ("apex", "u_v_os"):
        if not (root / sub).is_dir():
            raise DatasetError(f"{root / sub} not found (a flow release has labels.csv, apex/ and u_v_os/)")
    with open(labels_csv, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != HEADER:
        raise DatasetError(f"{labels_csv} row 1: header must be {','.join(HEADER)}")
    seen: dict[tuple[str, str, str], int] = {}

    def read(numbered: tuple[int, list[str]]) -> Sample:
        i, row = numbered
        if len(row) != 4:
            raise ValueError(f"expected 4 fields, got {len(row)}")
        dataset, subject_raw, clip_raw, label_raw = (c.strip() for c in row)
        if dataset not in CORPORA:
            raise ValueError(f"unknown dataset {dataset!r} (expected one of {CORPORA})")
        subject_file = _clip_name(subject_raw)
        clip = _clip_name(clip_raw)
        if label_raw not in ("0", "1", "2"):
            raise ValueError(f"label {label_raw!r} is not 0, 1 or 2")
        subject = f"{int(subject_file):03d}" if dataset == "samm" and subject_file.isdigit() else subject_file
        key = (dataset, subject, clip)
        if key in seen:
            raise ValueError(f"{dataset}/{subject}/{clip} already listed in row {seen[key]}")
        seen[key] = i
        stem = f"{subject_file}_{clip}"
        extras = {"apex_image": root / "apex" / f"{stem}.jpg", "flow_image": root / "u_v_os" / f"{stem}.png"}
        for what, path in extras.items():
            if not inside(path, root):
                raise ValueError(f"{what} {path} lies outside the data root")
            if not path.is_file():
                raise ValueError(f"{what} file {path} not found")
            read_release_image(path, what)
        label = int(label_raw)
        return Sample(dataset=dataset, subject=subject, clip=clip, emotion=MEGC3.classes[label],
                      labels={"megc3": label}, extras=extras)

    numbered = [(i, row) for i, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
    skipped: list[str] = []
    samples = collect_samples(numbered, read, lambda item: f"{labels_csv} row {item[0]}", options, skipped,
                              errors=(ValueError,))
    samples.sort(key=lambda s: (s.dataset, s.subject, s.clip))
    return LoadedDataset(name=name, task=task, labels=MEGC3, samples=samples, skipped=skipped)


class MegcFlowReleaseDataset(Dataset):
    """The public MEGC2019 precomputed-flow release (apex crops + 28x28 u/v/strain maps)."""

    name = "megc2019-flow"
    options = ()
    description = "precomputed-flow release: labels.csv + apex/<subject>_<clip>.jpg + u_v_os/<subject>_<clip>.png"
    tasks = {"megc3": MEGC3}
    kind = "flow-release"

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        return load_flow_release(self.need_root(root, "the folder with labels.csv, apex/, u_v_os/"), options, self.name)
