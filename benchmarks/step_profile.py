"""Where one training step of a release method goes on this CPU: torch's profiler over forward and
backward, and the optimiser step timed apart (default Adam, foreach, fused).

    python benchmarks/step_profile.py               # STSTNet, the composite profile's batch
    python benchmarks/step_profile.py --method htnet

One torch thread (as each fold process has), random inputs of the release's shapes (built by
``throughput.build``). CPU time of this process. Writes ``benchmarks/step_profile_<method>.md``.
"""
from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from throughput import METHODS, build

HERE = Path(__file__).resolve().parent


def optimiser_ms(method: str, mode: str, steps: int) -> tuple[float, float]:
    """(ms per full step, ms per forward + backward) with Adam in ``mode`` (default, foreach, fused)."""
    model, inputs, labels, _ = build(method, METHODS[method])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({} if mode == "default" else {mode: True}))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(inputs), labels).backward()
        opt.step()
    for _ in range(5):
        step()
    start = time.process_time()
    for _ in range(steps):
        step()
    full = time.process_time() - start
    start = time.process_time()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        loss_fn(model(inputs), labels).backward()
    return 1000 * full / steps, 1000 * (time.process_time() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="ststnet", choices=sorted(METHODS))
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, inputs, labels, batch = build(args.method, METHODS[args.method])
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(5):
        model.zero_grad()
        loss_fn(model(inputs), labels).backward()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            model.zero_grad()
            loss_fn(model(inputs), labels).backward()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    lines = [f"# One training step of {args.method}, where the time goes",
             "", f"Written by `python benchmarks/step_profile.py --method {args.method}` on "
             f"{datetime.date.today()} (torch {torch.__version__}, one thread, batch {batch}, "
             f"{args.steps} forward + backward passes, CPU time; other work on the machine inflates it).", "",
             "| op | self CPU % | ms per step | calls per step |", "|---|---:|---:|---:|"]
    for e in rows[:12]:
        lines.append(f"| `{e.key}` | {100 * e.self_cpu_time_total / total:.1f} | "
                     f"{e.self_cpu_time_total / 1000 / args.steps:.2f} | {e.count / args.steps:g} |")
    lines += ["", "Adam's step (ms per full step / ms of forward + backward alone, the difference is the optimiser):", "",
              "| Adam | full step ms | forward + backward ms |", "|---|---:|---:|"]
    for mode in ("default", "foreach", "fused"):
        full, fwd_bwd = optimiser_ms(args.method, mode, args.steps)
        lines.append(f"| {mode} | {full:.2f} | {fwd_bwd:.2f} |")
    out = HERE / f"step_profile_{args.method}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
