"""Throughput of the preprocessing steps (clips/s, one CPU thread) -> benchmarks/preprocessing.md.

A "clip" is what an extractor does per sample: for alignment, dlib detection + 68 landmarks on
the onset and the warp of onset and apex; for a flow backend, one onset -> apex flow field on
grayscale frames of the given size. Frames: the astronaut face (skimage.data) and a copy shifted
by 2 px, resized to the size measured.

    python benchmarks/preprocessing.py [--repeats N]
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import cv2
import numpy as np


def rate(fn, repeats: int) -> float:
    fn()  # warm-up (model loading, allocations)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return repeats / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    from skimage.data import astronaut

    from mercore.face import apply_alignment, alignment_transform, dlib_available
    from mercore.features.flow import compute_flow

    face = astronaut().astype(np.float32) / 255.0
    rows = []
    for size in (128, 224):
        if dlib_available():
            def align() -> None:
                m = alignment_transform(face, size, backend="dlib")
                apply_alignment(face, m, size)
                apply_alignment(np.roll(face, 2, axis=1), m, size)
            rows.append(("dlib alignment (512x512 input)", size, rate(align, args.repeats)))
        else:
            rows.append(("dlib alignment", size, float("nan")))
        g = cv2.cvtColor(cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        g2 = np.roll(g, 2, axis=1)
        for backend in ("tvl1", "farneback", "dis"):
            rows.append((f"flow {backend}", size, rate(lambda: compute_flow(g, g2, backend), args.repeats)))
    lines = ["# Preprocessing throughput", "",
             f"Measured by `benchmarks/preprocessing.py --repeats {args.repeats}` on {platform.processor() or platform.machine()}, "
             f"one OpenCV thread, on a shared 2-core machine (other jobs running: treat as rough).", "",
             "| step | size | clips/s |", "|---|---|---|"]
    lines += [f"| {name} | {size} | {r:.1f} |" for name, size, r in rows]
    out = Path(__file__).with_suffix(".md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
