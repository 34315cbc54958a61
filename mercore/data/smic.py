"""SMIC-HS adapter: the class is the folder; the clip runs from its first to its last frame.

Layout as distributed::

    <root>/HS/sN/micro/{negative,positive,surprise}/sN_xx_NN/image<frame>.bmp

``root`` may be the folder holding ``HS/`` (``SMIC_all_raw/``), ``HS/`` itself, or any folder
named by option ``frames``. Subjects are ``s1`` on disk and ``s01`` in the MEGC2019 ground truth;
``Sample.subject`` is ``s01`` and clip names are rewritten the same way (``s1_ne_01`` ->
``s01_ne_01``). No annotation sheet is needed: the onset is the first frame and the offset the last
(as the official composite uses them). SMIC has no annotated apex; option ``apex``:

* ``middle`` (default): the middle frame, position ``(n - 1) // 2``;
* ``spotting``: D&C-RoIs (:mod:`mercore.spotting`) on the clip's frames, with option
  ``landmarks: auto|dlib|canonical`` for the regions (default ``auto``). Results are cached under
  ``<cache_dir>/spotting/``.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..labels import MEGC3, MEGC3_RULES, LabelSet, map_emotion
from ..sample import Sample
from .dataset import (Dataset, DatasetError, LoadedDataset, LoadOptions, choose_task, collect_samples, data_root,
                      skip_or_raise)
from .folders import check_clip_dir, option_path

FPS = 100.0
CLASSES = ("negative", "positive", "surprise")
SDE3 = LabelSet("sde3", CLASSES, "SMIC's own 3 classes (negative, positive, surprise)")
APEX_CHOICES = ("middle", "spotting")
_SUBJECT_DIR = re.compile(r"^s(\d+)$", re.IGNORECASE)
_CLIP_DIR = re.compile(r"^s(\d+)(_.+)$", re.IGNORECASE)


def gt_subject(n: int | str) -> str:
    """``1`` -> ``s01``."""
    return f"s{int(n):02d}"


def find_hs_root(root: Path, extra: Mapping[str, Any]) -> Path:
    """The folder holding the ``sN`` subject folders."""
    given = option_path(root, extra, "frames", folder=True)
    if given is not None:
        return given
    for cand in (root / "HS", root / "SMIC_all_raw" / "HS", root):
        if cand.is_dir() and any(p.is_dir() and _SUBJECT_DIR.match(p.name) for p in cand.iterdir()):
            return cand
    raise DatasetError(f"no SMIC-HS folder under {root}: expected {root / 'HS'} with s1/, s2/ ... "
                       f"(or name it with -D frames=PATH)")


def _spotting_cache(cache_dir: Path, frames: list[Path], backend: str) -> Path:
    h = hashlib.sha256()
    for p in frames:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(f"dc-rois-v1|{backend}".encode())
    return Path(cache_dir) / "spotting" / f"{h.hexdigest()[:20]}.json"


def spotted_apex(frames: list[Path], cache_dir: Path, backend: str = "auto") -> int:
    """D&C-RoIs apex position of a clip, cached by file identity."""
    from ..spotting import spot_apex

    path = _spotting_cache(cache_dir, frames, backend)
    if path.is_file():
        return int(json.loads(path.read_text())["apex"])
    apex = spot_apex(frames, landmark_backend=backend)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"apex": apex, "frames": len(frames)}))
    tmp.replace(path)
    return apex


def load_smic(root: Path | str, options: LoadOptions) -> LoadedDataset:
    """Read a SMIC-HS tree into the samples of ``options.task`` (``megc3`` or ``sde3``).

    Raises:
        DatasetError: naming the folder at fault, unless ``options.skip_invalid``.
    """
    root = data_root(root)
    tasks = dict(SmicDataset.tasks)
    task = choose_task("smic", tasks, options.task)
    extra = dict(options.extra or {})
    apex_mode = str(extra.get("apex", "middle"))
    if apex_mode not in APEX_CHOICES:
        raise DatasetError(f"dataset 'smic': option apex={apex_mode!r}; choose one of {APEX_CHOICES}")
    backend = str(extra.get("landmarks", "auto"))
    hs = find_hs_root(root, extra)
    skipped: list[str] = []

    def clip_dirs() -> Iterator[Path]:
        for subject_dir in sorted(p for p in hs.iterdir() if p.is_dir() and _SUBJECT_DIR.match(p.name)):
            micro = subject_dir / "micro"
            if not micro.is_dir():
                skip_or_raise(f"{micro}: subject folder has no micro/ folder", options, skipped, "it")
                continue
            for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
                yield from sorted(p for p in emotion_dir.iterdir() if p.is_dir())

    def read(clip_dir: Path) -> Sample:
        subject_dir, emotion_dir = clip_dir.parents[2], clip_dir.parent
        match = _SUBJECT_DIR.match(subject_dir.name)
        assert match is not None  # clip_dirs() yields only folders of subject folders that match
        subject = gt_subject(match.group(1))
        emotion = emotion_dir.name.lower()
        if emotion not in CLASSES:
            raise ValueError(f"unknown emotion folder {emotion_dir.name!r} (expected one of {CLASSES})")
        m = _CLIP_DIR.match(clip_dir.name)
        if not m or gt_subject(m.group(1)) != subject:
            raise ValueError(f"clip folder name {clip_dir.name!r} does not start with its subject "
                             f"{subject_dir.name}_")
        clip = gt_subject(m.group(1)) + m.group(2)
        frames = check_clip_dir(clip_dir, hs)
        paths = [p for _, p in frames]
        apex = (len(paths) - 1) // 2 if apex_mode == "middle" else spotted_apex(paths, options.cache_dir, backend)
        labels = {name: idx for name, ls in tasks.items()
                  if (idx := map_emotion("smic", emotion, MEGC3_RULES, ls)) is not None}
        return Sample(dataset="smic", subject=subject, clip=clip, frames=tuple(paths), onset=0, apex=apex,
                      offset=len(paths) - 1, emotion=emotion, labels=labels, fps=FPS,
                      frame_numbers=tuple(n for n, _ in frames))

    samples = collect_samples(clip_dirs(), read, str, options, skipped, what="such clips",
                              errors=(ValueError, OSError))
    if not samples and not skipped:
        raise DatasetError(f"{hs}: no clips found under sN/micro/<emotion>/<clip>/")
    samples.sort(key=lambda s: (s.subject, s.clip))
    return LoadedDataset(name="smic", task=task, labels=tasks[task], samples=samples, skipped=skipped)


class SmicDataset(Dataset):
    """SMIC-HS (100 fps); class from the folder, apex = middle frame or D&C-RoIs spotting."""

    name = "smic"
    options = ("frames", "apex", "landmarks")
    description = "SMIC-HS: HS/sN/micro/<emotion>/<clip>/image*.bmp (100 fps); -D apex=middle|spotting"
    tasks = {"megc3": MEGC3, "sde3": SDE3}

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        return load_smic(self.need_root(root, "the folder with HS/"), options)
