"""Training throughput of each release method's composite profile on this CPU, and what the usual
speed-ups do to it.

    python benchmarks/throughput.py                 # every release method, every setting
    python benchmarks/throughput.py --only ststnet --steps 20
    python benchmarks/throughput.py --report-only   # throughput.md from throughput.json

For each method (its `quick` profile for the precomputed-flow release, batch as in the profile) it
times full training steps (forward, cross-entropy, backward, Adam step) on random inputs of the
release's shapes, one torch thread (as each of the two fold processes has), in these settings:

* ``fp32``: what the runs do;
* ``channels_last``: the model and inputs in NHWC memory layout;
* ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the forward pass;
* ``compile``: ``torch.compile`` of the model (its compile time reported apart).

It reports samples per second from process CPU time (which other jobs on the machine do not
inflate as they do wall time), the training FLOPs per sample (3 x the forward FLOPs counted by
``torch.utils.flop_counter``) and the achieved GFLOP/s beside an estimated peak of one core
(``--peak-gflops``; default 2 x 8 FP32 FMA lanes x 2 units x clock, AVX2, read from /proc/cpuinfo
when it names a clock, else 3.0 GHz). Writes ``benchmarks/throughput.{json,md}``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

import torch

from mercore.io import atomic_write_text

HERE = Path(__file__).resolve().parent
METHODS = {"ststnet": None, "htnet": None, "ahmsanet": None, "dfrnet": None, "rrmfnet": "base"}
SETTINGS = ("fp32", "channels_last", "bf16", "compile")


def clock_ghz() -> float:
    """The CPU clock /proc/cpuinfo states, else 3.0 (the machines here name none)."""
    try:
        found = re.findall(r"cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        found = []
    return float(found[0]) / 1000 if found else 3.0


def build(name: str, variant: str | None) -> tuple[torch.nn.Module, dict[str, torch.Tensor], torch.Tensor, int]:
    """The method's composite-profile model, one training batch of random inputs, labels, batch size."""
    from mercore.runner import load_method, run_config
    from mercore.spec import RunSpec

    registry, method = load_method(None, name)
    config = run_config(RunSpec(method, dataset="megc2019-flow", variant=variant, profile="quick"), registry, "cpu")
    batch_size = int(config["train"]["batch_size"])
    g = torch.Generator().manual_seed(0)
    inputs = {}
    for stream, request in method.features(config).items():
        size = int(request.params.get("size", request.params.get("source_size", 28)))
        inputs[stream] = torch.rand(batch_size, 3, size, size, generator=g)
    torch.manual_seed(0)
    return method.build_model(config, 3), inputs, torch.randint(0, 3, (batch_size,), generator=g), batch_size


def time_steps(name: str, variant: str | None, setting: str, steps: int) -> dict[str, Any]:
    model, inputs, labels, batch_size = build(name, variant)
    if setting == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        inputs = {k: v.contiguous(memory_format=torch.channels_last) for k, v in inputs.items()}
    compile_s = None
    if setting == "compile":
        model = torch.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if setting == "bf16" else contextlib.nullcontext())

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = model(inputs).float()
        torch.nn.functional.cross_entropy(logits, labels).backward()
        optimizer.step()

    start = time.process_time()
    step()  # warm-up (and compilation)
    if setting == "compile":
        compile_s = time.process_time() - start
    step()
    start = time.process_time()
    for _ in range(steps):
        step()
    per_step = (time.process_time() - start) / steps
    return {"method": name, "setting": setting, "batch_size": batch_size, "ms_per_step": round(per_step * 1e3, 2),
            "samples_per_s": round(batch_size / per_step, 1), "compile_s": None if compile_s is None else round(compile_s, 1)}


def flops_per_sample(name: str, variant: str | None) -> float:
    from mercore.profiling import count_flops

    model, inputs, _, batch_size = build(name, variant)
    model.eval()
    return 3 * count_flops(model, inputs) / batch_size  # forward + backward (about twice the forward)


def earlier_rows() -> list[dict[str, Any]]:
    """Rows of the last record, kept for the methods and settings this run does not measure
    (``--only`` measures some methods; the page keeps the others, each row with its date)."""
    path = HERE / "throughput.json"
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    return [{**r, "date": r.get("date", record["date"])} for r in record["rows"] if r.get("method") in METHODS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-gflops", type=float, default=None)
    parser.add_argument("--report-only", action="store_true", help="rewrite throughput.md from throughput.json")
    parser.add_argument("--note", default="", help="what else ran on the machine meanwhile (printed with the table)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    peak = args.peak_gflops or 2 * 8 * 2 * clock_ghz()
    measured = {(name, setting) for name in args.only for setting in args.settings}
    rows = [r for r in earlier_rows() if (r["method"], r["setting"]) not in measured]
    if args.report_only:
        write_page(json.loads((HERE / "throughput.json").read_text()))
        return
    for name in args.only:
        flops = flops_per_sample(name, METHODS[name])
        for setting in args.settings:
            try:
                row = time_steps(name, METHODS[name], setting, args.steps)
            except Exception as exc:  # a setting this build or model cannot run is reported, not fatal
                row = {"method": name, "setting": setting, "error": f"{type(exc).__name__}: {exc}"[:200]}
            if "samples_per_s" in row:
                row["train_mflops_per_sample"] = round(flops / 1e6, 2)
                row["achieved_gflops"] = round(row["samples_per_s"] * flops / 1e9, 3)
                row["share_of_peak"] = round(row["achieved_gflops"] / peak, 4)
            row["date"] = time.strftime("%Y-%m-%d")
            rows.append(row)
            print(row, flush=True)
    order = {name: i for i, name in enumerate(METHODS)}
    rows.sort(key=lambda r: (order[r["method"]], SETTINGS.index(r["setting"])))
    record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "avx512_bf16": has_flag("avx512_bf16"),
              "torch": torch.__version__, "threads": 1, "peak_gflops_one_core": round(peak, 1),
              "note": args.note, "rows": rows}
    atomic_write_text(HERE / "throughput.json", json.dumps(record, indent=1))
    write_page(record)


def has_flag(flag: str) -> bool:
    """Whether /proc/cpuinfo lists ``flag`` (False where there is no /proc/cpuinfo)."""
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


#: a setting counts as faster when it beats fp32 by this factor: the benchmark's noise under load
#: reaches about 30 % (see the page)
FASTER = 1.3


def speedups(rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, float]]]:
    """Per method, the settings at least :data:`FASTER` times fp32's samples/s, fastest first."""
    out: dict[str, list[tuple[str, float]]] = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        base = next((r for r in rows if r["method"] == name and r["setting"] == "fp32" and "samples_per_s" in r), None)
        if base is None:
            continue
        faster = [(r["setting"], r["samples_per_s"] / base["samples_per_s"]) for r in rows
                  if r["method"] == name and r["setting"] != "fp32" and "samples_per_s" in r
                  and r["samples_per_s"] >= FASTER * base["samples_per_s"]]
        out[name] = sorted(faster, key=lambda f: -f[1])
    return out


def write_page(record: dict[str, Any]) -> None:
    rows = record["rows"]
    lines = ["| method | setting | batch | ms / step | samples / s | train MFLOP / sample | GFLOP/s | of peak | compile s | measured |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['setting']} | - | - | - | - | - | - | {r['error']} | {r['date']} |")
        else:
            lines.append(f"| {r['method']} | {r['setting']} | {r['batch_size']} | {r['ms_per_step']} | {r['samples_per_s']} "
                         f"| {r['train_mflops_per_sample']} | {r['achieved_gflops']} | {r['share_of_peak']:.1%} "
                         f"| {r['compile_s'] if r['compile_s'] is not None else '-'} | {r['date']} |")
    found = speedups(rows)
    verdicts = "\n".join(f"- {name}: " + (", ".join(f"{setting} {x:.2f}x" for setting, x in faster) if faster
                                          else "none") for name, faster in found.items())
    atomic_write_text(HERE / "throughput.md", f"""# Training throughput on this CPU

Written by `python benchmarks/throughput.py` ({record['machine']}, torch {record['torch']},
kernels: {record['cpu_capability']}, AVX-512 BF16: {'yes' if record.get('avx512_bf16') else 'no'}, one torch thread;
each row's date in its last column, the last run on {record['date']}). Full training steps (forward, loss,
backward, Adam) on random inputs of the composite profile's shapes; CPU time of this process, so
other jobs on the machine do not inflate it as they do wall time. Peak of one core assumed
{record['peak_gflops_one_core']} GFLOP/s (FP32, 2 FMA units x 8 lanes x 2 x clock; the bf16 rows are
read against the same figure, though BF16 dot-product instructions, where the CPU has them, double
it). FLOPs: 3 x the forward's (`torch.utils.flop_counter`).{(" Load: " + record["note"] + ".") if record.get("note") else ""}

{chr(10).join(lines)}

Settings at least {FASTER}x as fast as fp32 here (below that, within the noise said next):

{verdicts}

CPU time still grows when other processes compete for caches and memory bandwidth: on an earlier
machine (2026-12-07, AVX2 kernels, no AVX-512 BF16) a run while two composite fold processes
used both cores read STSTNet fp32 at 12.0 ms/step, a second partial run under the same load at
16.9 ms/step; differences under about 30 % between settings are within that noise. That
machine's table (`git show 333e547:benchmarks/throughput.md`) found bf16 autocast far slower
(HTNet 28 times) and `torch.compile` faster only on HTNet (1.56x). Which of these settings a
profile uses is fixed by a rule before a composite run, never by its result (docs/protocols.md).
""")


if __name__ == "__main__":
    main()
