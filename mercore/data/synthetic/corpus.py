"""Writing the corpus: the CASME II tree (frames, coding sheet, ``generator.json``), atomically and
reproducibly (same parameters -> same bytes)."""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...interrupt import process_alive
from ...io import umask
from .faces import Face, make_face
from .plan import CLASS_PROPORTIONS, ClipSpec, plan_corpus
from .render import render_clip

GENERATOR_VERSION = 1
SHEET_NAME = "CASME2-coding-synthetic.xlsx"
MACRO_SHEET_NAME = "CASME2-coding-synthetic-macro.xlsx"
FRAMES_FOLDER = "CASME2_RAW_selected"
FPS = 200.0
DEFAULTS: dict[str, Any] = {
    "subjects": 16, "clips_per_subject": 16, "size": 128, "seed": 0,
    "min_frames": 20, "max_frames": 60, "peak_px": (0.5, 3.0), "jpeg_quality": 95,
    "macro": False, "macro_clips_per_subject": 4,
}

#: the generator's integer options: (least, most). The upper bounds keep a corpus to minutes and a few GB (a
#: mistyped -D subjects=100000000 once wrote about 50 MB/s without end); the defaults are far below them.
BOUNDS: dict[str, tuple[int, int]] = {
    "subjects": (1, 200), "clips_per_subject": (1, 200), "size": (32, 1024), "min_frames": (3, 1000),
    "max_frames": (3, 1000), "jpeg_quality": (1, 100), "macro_clips_per_subject": (1, 200),
}
#: frames x pixels of a whole corpus at most (subjects x clips x max_frames x size^2, macro clips included): 16
#: times the default corpus, about 1.5 GB on disk and several minutes to write
MAX_PIXELS = 4_000_000_000
MACRO_MAX_FRAMES = 90  # the macro clips' longest (plan_corpus)

HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


def _xlsx_bytes(rows: list[list[Any]]) -> bytes:
    """An xlsx with fixed timestamps and zip dates, so the same rows give the same bytes."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook has one worksheet, the active one
    ws.title = "Sheet1"
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)", rb"\g<1>2000-01-01T00:00:00Z\2", data)
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, data)
    return out.getvalue()


def _write_tree(dest: Path, faces: list[Face], specs: list[ClipSpec], sheet_name: str, jpeg_quality: int) -> None:
    rows = []
    by_subject = {f.subject: f for f in faces}
    for spec in specs:
        clip_dir = dest / FRAMES_FOLDER / spec.subject / spec.clip
        clip_dir.mkdir(parents=True, exist_ok=True)
        for number, data in zip(spec.frame_numbers, render_clip(by_subject[spec.subject], spec, jpeg_quality)):
            (clip_dir / f"img{number}.jpg").write_bytes(data)
        nums = spec.frame_numbers
        rows.append([spec.subject[3:], spec.clip, nums[spec.onset], nums[spec.apex], nums[spec.offset],
                     spec.action_units, spec.emotion])
    (dest / sheet_name).write_bytes(_xlsx_bytes(rows))


def generator_params(**overrides: Any) -> dict[str, Any]:
    """The full parameter set (defaults updated by ``overrides``), as ``generator.json`` records it."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown generator parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        params["peak_px"] = [float(v) for v in params["peak_px"]]
    except (TypeError, ValueError):
        raise ValueError(f"generator parameter 'peak_px': expected two numbers, got {params['peak_px']!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in params["peak_px"]) or len(params["peak_px"]) != 2 \
            or params["peak_px"][0] > params["peak_px"][1]:
        raise ValueError(f"generator parameter 'peak_px': expected two numbers 0 < low <= high, got {params['peak_px']}")
    for k in ("seed", *BOUNDS):
        value = params[k]
        if isinstance(value, bool) or not (isinstance(value, int) or str(value).strip().lstrip("-").isdigit()):
            raise ValueError(f"generator parameter {k!r}: expected an integer, got {value!r}")
        params[k] = int(value)
        least, most = BOUNDS.get(k, (params[k], params[k]))
        if not least <= params[k] <= most:
            raise ValueError(f"generator parameter {k!r}: expected an integer from {least} to {most}, got {params[k]}")
    params["macro"] = bool(params["macro"])
    if params["min_frames"] > params["max_frames"]:
        raise ValueError(f"generator parameters 'min_frames' {params['min_frames']} and 'max_frames' "
                         f"{params['max_frames']}: min_frames must not exceed max_frames")
    frames = params["clips_per_subject"] * params["max_frames"]
    if params["macro"]:
        frames += params["macro_clips_per_subject"] * MACRO_MAX_FRAMES
    pixels = params["subjects"] * frames * params["size"] ** 2
    if pixels > MAX_PIXELS:
        raise ValueError(f"generator parameters subjects x clips_per_subject x max_frames x size^2 (macro clips "
                         f"included) give {pixels:.2g} pixels of frames, above the bound {MAX_PIXELS:.2g} (16 times the "
                         f"default corpus); ask for fewer subjects, clips or frames, or smaller frames")
    return params


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps({"version": GENERATOR_VERSION, **params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def generate(out_dir: Path | str, *, subjects: int = 16, clips_per_subject: int = 16, size: int = 128,
             seed: int = 0, macro: bool = False, overwrite: bool = False, **more: Any) -> Path:
    """Write the synthetic corpus in the CASME II layout into ``out_dir`` and return it.

    Args:
        out_dir: target folder; must not exist, or be empty, unless ``overwrite``.
        subjects, clips_per_subject, size, seed: corpus shape; same parameters -> same bytes.
        macro: also write macro-expression clips (6-20 px, 40-90 frames) under ``out_dir/macro/``
            (same layout, sheet ``CASME2-coding-synthetic-macro.xlsx``).
        overwrite: replace an existing non-empty ``out_dir``.
        **more: other :data:`DEFAULTS` (``min_frames``, ``max_frames``, ``peak_px``, ``jpeg_quality``,
            ``macro_clips_per_subject``).

    The tree is built in a hidden sibling folder and renamed into place at the end, so an
    interrupted run never leaves a partial ``out_dir``; ``generator.json`` is written last. An
    interrupted generator removes its folder (SIGTERM too, under ``mer synth``); one killed
    outright leaves it to the next generator of the same ``out_dir``, which removes it.
    """
    params = generator_params(subjects=subjects, clips_per_subject=clips_per_subject, size=size, seed=seed,
                              macro=macro, **more)
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-"))
    try:
        faces = [make_face(s, params["size"], params["seed"]) for s in range(params["subjects"])]
        specs = plan_corpus(**params)
        _write_tree(tmp, faces, specs, SHEET_NAME, params["jpeg_quality"])
        meta: dict[str, Any] = {
            "generator": "mercore.data.synthetic", "version": GENERATOR_VERSION, "params": params,
            "hash": params_hash(params), "fps": FPS,
            "counts": {e: sum(s.emotion == e for s in specs) for e in CLASS_PROPORTIONS},
            "clips": [asdict(s) for s in specs],
        }
        if params["macro"]:
            mspecs = plan_corpus(**{**params, "clips_per_subject": params["macro_clips_per_subject"]}, kind="macro")
            _write_tree(tmp / "macro", faces, mspecs, MACRO_SHEET_NAME, params["jpeg_quality"])
            meta["macro_clips"] = [asdict(s) for s in mspecs]
        (tmp / "generator.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0700 would hide a shared corpus from others
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-{os.getpid()}-"))
            os.replace(out_dir, old / "x")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if (out_dir / "generator.json").is_file():  # a concurrent generator finished first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _remove_orphans(out_dir: Path) -> None:
    """Remove the ``.<name>.tmp-<pid>-*`` / ``.old-<pid>-*`` folders of generators that died
    (SIGKILL: no cleanup ran); those of a generator still running are left alone."""
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(?:tmp|old)-(\d+)-")
    for folder in out_dir.parent.iterdir():
        m = pattern.match(folder.name)
        if m and folder.is_dir() and not process_alive(int(m.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
