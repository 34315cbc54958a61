"""The folder side of the corpus adapters, shared by all of them: a path that an option names, a
clip folder that must lie inside the data root and hold numbered frames, and where annotated frame
numbers stand among those frames. One copy, so that every corpus names a missing or misplaced clip
the same way.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from .dataset import DatasetError

Frames = list[tuple[int, Path]]

_TRAILING_NUMBER = re.compile(r"(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)


def option_path(root: Path, extra: Mapping[str, Any], key: str, *, folder: bool) -> Path | None:
    """``extra[key]`` as a path (absolute, or relative to ``root``), checked to exist; None if unset."""
    if not extra.get(key):
        return None
    p = Path(str(extra[key])).expanduser()
    p = p if p.is_absolute() else root / p
    if not (p.is_dir() if folder else p.is_file()):
        raise DatasetError(f"{'folder' if folder else 'file'} {p} (-D {key}=PATH) not found")
    return p


def inside(path: Path, root: Path) -> bool:
    """``path`` stays inside ``root``, lexically and after resolving symlinks (a symlinked root is fine)."""
    if not Path(os.path.normpath(path.absolute())).is_relative_to(Path(os.path.normpath(root.absolute()))):
        return False
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def numbered_frames(clip_dir: Path) -> Frames:
    """``(N, path)`` for every image of a folder whose name ends in a number, sorted by N.

    Raises:
        ValueError: two files with the same trailing number (the clip's order would be ambiguous).
    """
    frames: dict[int, Path] = {}
    with os.scandir(clip_dir) as it:
        for entry in it:
            m = _TRAILING_NUMBER.search(entry.name)
            if m and entry.is_file():
                n = int(m.group(1))
                if n in frames:
                    raise ValueError(f"{clip_dir}: frames {frames[n].name} and {entry.name} share number {n}")
                frames[n] = Path(entry.path)
    return sorted(frames.items())


def check_clip_dir(clip_dir: Path, frames_root: Path, list_frames: Callable[[Path], Frames] = numbered_frames,
                   named: str = "numbered image") -> Frames:
    """The frames (``list_frames``, whose files the messages call ``named``) of a clip folder that
    must exist, lie inside ``frames_root`` and hold some."""
    if not inside(clip_dir, frames_root):
        raise ValueError(f"clip folder {clip_dir} lies outside the data root {frames_root}")
    if not clip_dir.is_dir():
        raise ValueError(f"clip folder {clip_dir} not found")
    frames = list_frames(clip_dir)
    if not frames:
        raise ValueError(f"clip folder {clip_dir} has no {named} frames")
    return frames


def frame_span(frames: Frames, prefix: str = "") -> str:
    """``first..last, count files`` of a clip, for messages (``prefix``: how the corpus writes a frame number)."""
    return f"{prefix}{frames[0][0]}..{prefix}{frames[-1][0]}, {len(frames)} files"


def frame_positions(frames: Frames, clip_dir: Path, wanted: Mapping[str, int | None],
                    prefix: str = "") -> dict[str, int | None]:
    """Positions in ``frames`` of the frame numbers in ``wanted`` (column name -> N or None)."""
    pos = {n: i for i, (n, _) in enumerate(frames)}
    out: dict[str, int | None] = {}
    for col, n in wanted.items():
        if n is not None and n not in pos:
            raise ValueError(f"{col} {n} is not among the frames of {clip_dir} ({frame_span(frames, prefix)})")
        out[col] = None if n is None else pos[n]
    return out
