"""Model size and speed: parameters, FLOPs and median single-sample latency on real inputs."""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .data.dataset import LoadOptions
from .features.store import build_inputs
from .method import Method
from .nn.base import check_modules, watch_outputs
from .plugins import Registry, load_registry
from .spec import RunSpec
from .training.loop import descend


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward pass as counted by torch (a multiply-add counts as 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(batch)
    return int(counter.get_total_flops())


def median_latency_ms(model: torch.nn.Module, batch: dict[str, torch.Tensor], runs: int = 30, warmup: int = 5) -> float:
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            start = time.perf_counter()
            model(batch)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def training_samples_per_s(model: torch.nn.Module, batch: dict[str, torch.Tensor], batch_size: int = 8,
                           steps: int = 5, warmup: int = 2) -> float | None:
    """Training throughput: forward, cross-entropy, backward and an SGD step on ``batch_size`` copies
    of ``batch`` (the values do not change the cost). The model is restored afterwards.

    None when the logits carry no gradient: such a model (e.g. a prototype classifier whose
    centroids are set after training) is trained through its method's own stages instead."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return None
    state = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    inputs = {k: v.expand(batch_size, *v.shape[1:]).contiguous() for k, v in batch.items()}
    optimizer = torch.optim.SGD(trainable, lr=1e-6)
    seconds = 0.0
    model.train()
    try:
        for i in range(warmup + steps):
            start = time.perf_counter()
            logits = model(inputs)
            if not logits.requires_grad:
                return None
            labels = torch.arange(batch_size) % logits.shape[1]
            descend(torch.nn.functional.cross_entropy(logits, labels), optimizer)
            if i >= warmup:
                seconds += time.perf_counter() - start
    finally:
        model.load_state_dict(state)
        model.train(was_training)
    return batch_size * steps / seconds


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def example_batch(method: Method, config: dict[str, Any], cache_dir: Path = Path(".mer")) -> dict[str, torch.Tensor]:
    """One real sample's inputs, from the first clip of the built-in synthetic corpus."""
    registry = load_registry()
    data = registry.dataset("synthetic").load(None, LoadOptions(cache_dir=cache_dir))
    store = registry.feature_store(cache_dir)
    return build_inputs(store, method.features(config), data.samples[:1], progress=False)


LOAD_NOTE = ("wall-clock figures of this machine as loaded while they were measured: other work on it makes "
             "them slower, so compare only figures measured together")


def profile_method(spec: RunSpec, *, registry: Registry | None = None, runs: int = 30, threads: int | None = None,
                   num_classes: int = 3, announce: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The figures `mer profile` prints (and the benchmarks record) for the model ``mer run`` would
    build from ``spec`` on a CPU (its method, variant, profile and overrides; the config resolved
    for ``spec.dataset`` as the run resolves it), inputs from the synthetic corpus. ``announce``
    hears each step before it starts, as some take minutes."""
    from .runner import resolve_method, run_config

    say = announce or (lambda line: None)
    if threads:
        torch.set_num_threads(threads)
    registry, method = resolve_method(spec.method, registry)
    config = run_config(replace(spec, method=method), registry, "cpu")
    say(f"profile {config['meta']['profile']}: building the model")
    model = method.build_model(config, num_classes).eval()
    check_modules(model, f"method {method.name!r}")  # as `mer run` does, before any measurement
    watch_outputs(model, f"method {method.name!r}")
    say("reading one clip's inputs (the first use writes the synthetic corpus and computes its features: minutes)")
    batch = example_batch(method, config)
    say("counting FLOPs")
    flops = count_flops(model, batch)
    say(f"measuring single-sample latency ({runs} forward passes)")
    latency = median_latency_ms(model, batch, runs=runs)
    say("measuring training speed (forward, backward and an optimiser step on batches of 8)")
    training = training_samples_per_s(model, batch)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "method": method.name,
        "variant": config["meta"]["variant"],
        "profile": config["meta"]["profile"],
        "inputs": {k: tuple(v.shape[1:]) for k, v in batch.items()},
        "parameters": count_parameters(model),
        "gflops": round(flops / 1e9, 4),
        "latency_ms_median": round(latency, 2),
        "train_samples_per_s": _round(training),
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "load_average_1min": None if load is None else f"{load:.2f} on {os.cpu_count()} cores",
        "note": LOAD_NOTE,
    }
