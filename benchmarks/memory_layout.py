"""CA-I3D training step in contiguous vs channels-last 3D layout -> benchmarks/memory_layout.{md,json}.

MPFNet's encoder converts its input to ``torch.channels_last_3d`` because oneDNN runs its small
3D convolutions faster in that layout on CPU. This measures the claim: forward + backward of the
encoder's layers (stem -> pool -> Inception + CA -> pool -> Inception + CA -> head) on a batch
in each layout, for the quick profile's encoder and a wider one, median of ``--repeats`` steps
after 3 warm-up steps, with ``--threads`` torch threads. It also checks that both layouts give
the same outputs (up to float rounding).

    python benchmarks/memory_layout.py [--threads 1] [--batch 24] [--repeats 15]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from mer_mpfnet.method import MPFNet
from mer_mpfnet.model import CAI3D, MPFNetConfig
from mercore.io import atomic_write_text

HERE = Path(__file__).resolve().parent
ENCODERS = {  # name -> (model section overrides of the paper config, input T, H = W)
    "quick (stem 4, width x0.125, 32 px, T 3)": (dict(stem_channels=32, width=0.125, embedding_dim=64), 3, 32),
    "wider (stem 16, width x0.25, 64 px, T 5)": (dict(stem_channels=64, width=0.25, embedding_dim=64), 5, 64),
}


def layers(enc: CAI3D, x: torch.Tensor) -> torch.Tensor:
    """The encoder without ``features``' own layout conversion, so the input's layout is kept."""
    fmap = enc.mixed_b(enc.pool2(enc.mixed_a(enc.pool1(enc.stem(x)))))
    return enc.embed_map(fmap)


def step_ms(enc: CAI3D, x: torch.Tensor, repeats: int) -> float:
    times = []
    for i in range(repeats + 3):
        t = time.perf_counter()
        layers(enc, x).sum().backward()
        if i >= 3:
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=24, help="clips per step (an MPFNet episode: 3 x (5 + 3))")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, (kwargs, t, size) in ENCODERS.items():
        torch.manual_seed(0)
        cfg = MPFNetConfig.from_config({**MPFNet().default_config()["model"], **kwargs}, size=size, length=t)
        enc = CAI3D(cfg.encoder(5))
        x = torch.randn(args.batch, 5, t, size, size)
        x_last = x.contiguous(memory_format=torch.channels_last_3d)
        enc.eval()
        with torch.no_grad():
            diff = (layers(enc, x) - layers(enc, x_last)).abs().max().item()
        enc.train()
        contiguous, last = step_ms(enc, x, args.repeats), step_ms(enc, x_last, args.repeats)
        rows.append({"encoder": name, "batch": args.batch, "contiguous_ms": round(contiguous, 1),
                     "channels_last_ms": round(last, 1), "speedup": round(contiguous / last, 2),
                     "max_abs_output_diff": diff})
    meta = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": args.threads}
    atomic_write_text(args.out / "memory_layout.json", json.dumps({"device": meta, "rows": rows}, indent=2) + "\n")
    lines = ["# CA-I3D training step: contiguous vs channels-last 3D", "",
             f"Measured by `python benchmarks/memory_layout.py` on {meta['cpu']}, torch {meta['torch']}, "
             f"{args.threads} thread(s); median of {args.repeats} forward + backward steps.", "",
             "| encoder | batch | contiguous (ms) | channels-last (ms) | speed-up | max output difference |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['encoder']} | {r['batch']} | {r['contiguous_ms']} | {r['channels_last_ms']} | {r['speedup']}x | "
              f"{r['max_abs_output_diff']:.1e} |" for r in rows]
    atomic_write_text(args.out / "memory_layout.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
