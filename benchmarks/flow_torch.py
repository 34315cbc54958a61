"""Agreement and speed of ``tvl1-torch`` vs scikit-image's TV-L1 -> benchmarks/flow_torch.{md,json}.

Agreement (128x128, on the default device: CUDA when available) on two kinds of pairs:

* ``smic-warped``: real SMIC apex crops (``$MER_SHARED/data/megc2019-flow-smic/apex``, gray,
  resized) as ``nxt`` and the same crop warped by a smooth known field ``f`` (three Gaussian
  bumps of up to 1.5 px plus a sub-pixel translation) as ``prev = nxt(x + f(x))``, so the
  ground truth is exactly ``f``;
* ``synthetic-consecutive``: frames t, t + 1 in the middle of the onset -> apex rise of clips of a
  tiny synthetic corpus (``mercore.data.synthetic.generate``); the ground truth is recomputed
  from the generator's geometry (rigid head jitter + expression field; brightness nuisances --
  blink, flicker, noise, JPEG -- are not motion and make both flows deviate from it).

Endpoint errors (EPE) against the ground truth are over the interior (8 px margin: the
synthetic renderer reflects at the border). Speed: pairs/s of ``tvl1`` (scikit-image, one pair
at a time) and ``tvl1-torch`` (a batch of B pairs per call) on ``smic-warped`` pairs, CPU with
``--threads`` threads, and CUDA when available (device name recorded).

    python benchmarks/flow_torch.py [--sizes 128 224] [--batches 1 16 64] [--cpu-batches 1 16 64]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from mercore.data import synthetic
from mercore.data.frames import read_image, resize, to_gray
from mercore.features.flow import compute_flow, compute_flow_batch
from mercore.features.torch_flow import tvl1_torch
from mercore.shared import shared_dir

SMIC_APEX = shared_dir() / "data" / "megc2019-flow-smic" / "apex"
MARGIN = 8


def _sample(image: np.ndarray, disp: np.ndarray, order: int) -> np.ndarray:
    """``image(x + disp(x))`` in float64 (cv2.remap quantises positions to 1/32 px: too coarse for a truth)."""
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float64)
    return ndi.map_coordinates(image.astype(np.float64), [ys + disp[1], xs + disp[0]], order=order, mode="nearest")


def smooth_field(rng: np.random.Generator, size: int, peak: float = 1.5) -> np.ndarray:
    """(2, H, W) displacement: three Gaussian bumps (largest magnitude ``peak`` px) + a translation < 0.5 px."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    field = np.zeros((2, size, size))
    for _ in range(3):
        x0, y0 = rng.uniform(0.25, 0.75, 2) * size
        sigma = rng.uniform(0.08, 0.15) * size
        bump = np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma ** 2))
        field += bump[None] * rng.normal(size=2)[:, None, None]
    field *= peak / np.sqrt((field ** 2).sum(0)).max()
    field += rng.uniform(-0.5, 0.5, 2)[:, None, None]
    return field.astype(np.float32)


def smic_pairs(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` (prev, nxt, truth) triples from real apex crops; cycles through the crops if ``n`` is large."""
    files = sorted(SMIC_APEX.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no apex crops in {SMIC_APEX}")
    rng = np.random.default_rng(seed)
    picks = np.linspace(0, len(files) - 1, min(n, len(files))).astype(int)
    prevs, nxts, truths = [], [], []
    for i in range(n):
        nxt = to_gray(resize(read_image(files[picks[i % len(picks)]]), size))
        field = smooth_field(rng, size)
        prevs.append(_sample(nxt, field, order=3))  # prev(x) = nxt(x + f(x))
        nxts.append(nxt)
        truths.append(field)
    return np.stack(prevs).astype(np.float32), np.stack(nxts), np.stack(truths)


def _frame_map(face: synthetic.Face, spec: synthetic.ClipSpec) -> tuple:
    """The generator's per-frame sampling map m_t(x) (``render_clip``): frame_t(x) = base(m_t(x))."""
    size = face.neutral.shape[0]
    rng = synthetic.seeded_rng(spec.seed, 2)  # same draws, in the same order, as render_clip
    fld = np.moveaxis(synthetic.action_field(face, spec, size), -1, 0)  # (2, H, W)
    amp = synthetic.profile(spec)
    k = size / 128.0
    tx = synthetic.render.smooth_walk(rng, spec.n_frames, rng.uniform(0.2, 1.0) * k)
    ty = synthetic.render.smooth_walk(rng, spec.n_frames, rng.uniform(0.2, 1.0) * k)
    rot = np.deg2rad(synthetic.render.smooth_walk(rng, spec.n_frames, rng.uniform(0.1, 0.5)))
    cx, cy = face.landmarks["center"]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)

    def m(t: int, disp: np.ndarray) -> np.ndarray:
        x, y = xs + disp[0], ys + disp[1]
        f = [_sample(c, disp, order=1) for c in fld]  # expression field at x + disp
        c, s = np.cos(rot[t]), np.sin(rot[t])
        qx, qy = x - cx - tx[t], y - cy - ty[t]
        return np.stack([c * qx + s * qy + cx - amp[t] * f[0], -s * qx + c * qy + cy - amp[t] * f[1]])
    return m


def synthetic_pairs(root: Path, size: int, onset_apex: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames t, t + 1 mid-rise (or onset, apex) of every clip of a generated corpus, with the true flow."""
    meta = json.loads((root / "generator.json").read_text())
    faces = {}
    prevs, nxts, truths = [], [], []
    for clip in meta["clips"]:
        spec = synthetic.ClipSpec(**clip)
        subject = int(spec.subject[3:]) - 1
        face = faces.setdefault(subject, synthetic.make_face(subject, size, meta["params"]["seed"]))
        assert face.subject == spec.subject
        mid = (spec.onset + spec.apex) // 2
        t0, t1 = (spec.onset, spec.apex) if onset_apex else (mid, mid + 1)
        folder = root / synthetic.FRAMES_FOLDER / spec.subject / spec.clip
        frames = [to_gray(read_image(folder / f"img{spec.frame_numbers[i]}.jpg")) for i in (t0, t1)]
        m = _frame_map(face, spec)
        target = m(t0, np.zeros((2, size, size)))
        disp = np.zeros((2, size, size))  # solve m_t1(x + d) = m_t0(x) by fixed-point iteration
        for _ in range(50):
            disp -= m(t1, disp) - target
        residual = np.abs(m(t1, disp) - target).max()
        assert residual < 1e-3, residual
        prevs.append(frames[0])
        nxts.append(frames[1])
        truths.append(disp.astype(np.float32))
    return np.stack(prevs), np.stack(nxts), np.stack(truths)


def epe(a: np.ndarray, b: np.ndarray, margin: int = 0) -> np.ndarray:
    """Endpoint error per pixel of (N, 2, H, W) flows, optionally without a border of ``margin`` px."""
    e = np.sqrt(((a - b) ** 2).sum(1))
    return e[:, margin:e.shape[1] - margin, margin:e.shape[2] - margin] if margin else e


def agreement(name: str, prevs: np.ndarray, nxts: np.ndarray, truths: np.ndarray) -> dict:
    ref = np.stack([compute_flow(p, n, "tvl1") for p, n in zip(prevs, nxts)])
    ours = compute_flow_batch(prevs, nxts, "tvl1-torch")
    diff = epe(ours, ref)
    return {
        "pairs": name, "n": len(prevs), "size": prevs.shape[-1],
        "truth_px_mean": float(np.sqrt((truths ** 2).sum(1)).mean()),
        "vs_skimage_mean": float(diff.mean()), "vs_skimage_median": float(np.median(diff)),
        "vs_skimage_p99": float(np.percentile(diff, 99)), "vs_skimage_max": float(diff.max()),
        "vs_skimage_worst_pair_mean": float(diff.mean(axis=(1, 2)).max()),
        "torch_vs_truth_mean": float(epe(ours, truths, MARGIN).mean()),
        "torch_vs_truth_max": float(epe(ours, truths, MARGIN).max()),
        "skimage_vs_truth_mean": float(epe(ref, truths, MARGIN).mean()),
        "skimage_vs_truth_max": float(epe(ref, truths, MARGIN).max()),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def speed(sizes: list[int], cpu_batches: list[int], cuda_batches: list[int], repeats: int) -> list[dict]:
    rows = []
    for size in sizes:
        prevs, nxts, _ = smic_pairs(max(cpu_batches + cuda_batches + [repeats]), size, seed=1)
        compute_flow(prevs[0], nxts[0], "tvl1")  # warm-up
        t = time.perf_counter()
        for i in range(repeats):
            compute_flow(prevs[i], nxts[i], "tvl1")
        rows.append({"backend": "tvl1 (scikit-image)", "device": "cpu", "size": size, "batch": 1,
                     "pairs_per_s": repeats / (time.perf_counter() - t)})
        devices = [(torch.device("cpu"), cpu_batches)]
        if torch.cuda.is_available():
            devices.append((torch.device("cuda"), cuda_batches))
        for device, batches in devices:
            p_all, n_all = torch.from_numpy(prevs).to(device), torch.from_numpy(nxts).to(device)
            with torch.inference_mode():
                for b in batches:
                    p, n = p_all[:b], n_all[:b]
                    tvl1_torch(p, n)  # warm-up (allocator, kernels) at this batch shape
                    _sync(device)
                    calls = repeats if b == 1 else 1
                    t = time.perf_counter()
                    for _ in range(calls):
                        tvl1_torch(p, n)
                    _sync(device)
                    rows.append({"backend": "tvl1-torch", "device": device.type, "size": size, "batch": b,
                                 "pairs_per_s": calls * b / (time.perf_counter() - t)})
                    print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64], help="CUDA batch sizes")
    ap.add_argument("--cpu-batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeats", type=int, default=3, help="timed calls at batch 1 (and skimage pairs)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    ap.add_argument("--agreement-pairs", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic.generate(Path(tmp) / "corpus", subjects=2, clips_per_subject=args.agreement_pairs // 2,
                                  size=128, seed=0)
        acc = [agreement("smic-warped", *smic_pairs(args.agreement_pairs, 128)),
               agreement("synthetic-consecutive", *synthetic_pairs(root, 128)),
               agreement("synthetic-onset-apex", *synthetic_pairs(root, 128, onset_apex=True))]
    for row in acc:
        print(row, flush=True)
    rows = speed(args.sizes, args.cpu_batches, args.batches, args.repeats)

    info = {"command": "python benchmarks/flow_torch.py " + " ".join(
                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items()),
            "cpu": platform.processor() or platform.machine(), "cpu_threads": args.threads,
            "cuda_device": cuda, "torch": torch.__version__,
            "agreement_device": "cuda" if cuda else "cpu", "seconds": round(time.perf_counter() - t0, 1),
            "agreement": acc, "speed": rows}
    out = Path(__file__).with_suffix("")
    out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    lines = ["# TV-L1 in PyTorch (`tvl1-torch`) vs scikit-image", "",
             f"Measured by `{info['command']}` ({info['seconds']} s); CPU {info['cpu']} with "
             f"{args.threads} torch thread(s), CUDA device: {cuda or 'none'}; torch {torch.__version__}. "
             "See `docs/torch-flow.md` for what the pairs are.", "",
             f"## Agreement (128x128, tvl1-torch on {info['agreement_device']}); endpoint error in px", "",
             "| pairs | n | mean true motion | vs skimage: mean | median | p99 | max | worst pair mean "
             "| vs truth: torch mean | skimage mean | torch max | skimage max |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {a['pairs']} | {a['n']} | {a['truth_px_mean']:.3f} | {a['vs_skimage_mean']:.2e} | "
              f"{a['vs_skimage_median']:.2e} | {a['vs_skimage_p99']:.2e} | {a['vs_skimage_max']:.2e} | "
              f"{a['vs_skimage_worst_pair_mean']:.2e} | {a['torch_vs_truth_mean']:.4f} | "
              f"{a['skimage_vs_truth_mean']:.4f} | {a['torch_vs_truth_max']:.3f} | {a['skimage_vs_truth_max']:.3f} |"
              for a in acc]
    lines += ["", "## Speed (pairs/s; scikit-image is one pair at a time)", "",
              "| backend | device | size | batch | pairs/s |", "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {cuda if r['device'] == 'cuda' else r['device']} | {r['size']} | {r['batch']} | "
              f"{r['pairs_per_s']:.2f} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
