"""Chaos check: kill a small parallel ``mer run`` at random moments, resume it, compare the result.

    python benchmarks/chaos.py                 # 20 kills (~15 min on 2 cores); writes chaos.json and chaos.md here
    python benchmarks/chaos.py --kills 40 --seed 1

First an uninterrupted reference run. Then each trial starts the same ``mer run --workers 2`` (a
tiny method on frame differences of a 6-subject synthetic corpus, MLflow tracking on) in a fresh
cache, so a kill can land anywhere: corpus generation, feature caching, MLflow set-up, folds,
artifacts. At a random moment within the reference run's wall time it sends SIGTERM, SIGINT to
the process group (a Ctrl-C) or SIGKILL, checks that the fold processes are gone within 10 s,
reruns the same command to completion and compares every fold's predictions and probabilities
with the reference, exactly. After the resume no MLflow run of that run folder may be RUNNING.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mercore.testing.processes import children, wait_gone

HERE = Path(__file__).resolve().parent
SIGNALS = ("SIGTERM", "SIGINT", "SIGKILL")
STOP_LIMIT_S = 10.0


def _child(argv: list[str]) -> None:
    """``mer`` with the tiny method registered (a plugin would be an install away)."""
    from torch import nn

    import mercore.runner
    from mercore import FeatureRequest, Method, SupervisedTrainer, hookimpl
    from mercore.cli import cli
    from mercore.plugins import load_registry

    class ChaosNet(Method):
        """Linear model on the 16 px gray |apex - onset|: seconds per fold, real frames and cache."""

        name = "chaosnet"

        def default_config(self):
            return {"train": {"optimizer": "adam", "lr": 0.01, "epochs": 300, "batch_size": 8}}

        def features(self, config):
            return {"diff": FeatureRequest("frame_diff", {"size": 16, "gray": True})}

        def build_model(self, config, num_classes):
            return _Net(num_classes)

        def stages(self, config):
            return [SupervisedTrainer.from_config(config["train"])]

    class _Net(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.fc = nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, num_classes))

        def forward(self, batch):
            return self.fc(batch["diff"])

    class Plugin:
        @hookimpl
        def mer_register_methods(self, register):
            register(ChaosNet)

    registry = load_registry(only=[], extra_plugins=[("chaosnet", Plugin())])
    mercore.runner.load_method = lambda _registry, name: (registry, registry.method(name))
    cli(argv)


def command(cache: Path, uri: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "child", "run", "--plugin", "chaosnet", "-q",
            "--workers", "2", "--cache-dir", str(cache), "--tracking-uri", uri, "--experiment", "chaos",
            "-D", "subjects=6", "-D", "clips_per_subject=6", "-D", "size=32", "--task", "sde5"]


def predictions(cache: Path) -> dict[int, dict]:
    """Per fold: test keys, predicted classes and probabilities, as recorded."""
    out = {}
    for path in sorted(cache.glob("runs/*/folds/*.json")):
        fold = json.loads(path.read_text())
        out[fold["index"]] = {k: fold[k] for k in ("keys", "y_pred", "probabilities")}
    return out


def running_runs(uri: str, run_dir: str) -> int:
    import mlflow

    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("chaos")
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=5000)
    parents = {r.info.run_id for r in runs if r.data.tags.get("mer.run_dir") == run_dir}
    return sum(r.info.run_id in parents or r.data.tags.get("mlflow.parentRunId") in parents for r in runs)


def trial(work: Path, uri: str, reference: dict, delay: float, signame: str) -> dict:
    cache = work / "cache"
    proc = subprocess.Popen(command(cache, uri), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(delay)
    finished = proc.poll() is not None
    workers = [] if finished else children(proc.pid)
    recorded = len(list(cache.glob("runs/*/folds/*.json")))
    signum = getattr(signal, signame)
    if not finished:
        if signame == "SIGINT":
            os.killpg(proc.pid, signum)  # a Ctrl-C reaches the whole process group
        else:
            os.kill(proc.pid, signum)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    stop_s = time.monotonic() - sent
    wait_gone(workers, until=sent + 30)
    workers_s = time.monotonic() - sent
    resume = subprocess.run(command(cache, uri), capture_output=True, text=True, timeout=600)
    result = predictions(cache)
    run_dirs = [str(p) for p in cache.glob("runs/*")]
    return {
        "signal": signame, "at_s": round(delay, 2), "finished_before_signal": finished,
        "folds_recorded_before_signal": recorded, "exit_code": proc.returncode,
        "stopped_s": round(stop_s, 2), "workers_at_signal": len(workers), "workers_gone_s": round(workers_s, 2),
        "workers_gone_in_time": workers_s <= STOP_LIMIT_S, "resume_exit_code": resume.returncode,
        "resume_reused": next((line.split()[0] for line in resume.stdout.splitlines() if "reused" in line), "0"),
        "identical": resume.returncode == 0 and result == reference,
        "running_mlflow_runs_after_resume": sum(running_runs(uri, d) for d in run_dirs),
        "traceback": "Traceback" in err,
    }


def write_outputs(out: Path, summary: dict, trials: list[dict]) -> None:
    """``chaos.json`` (every trial) and ``chaos.md`` (the figure and a table of the kills)."""
    (out / "chaos.json").write_text(json.dumps({"summary": summary, "trials": trials}, indent=1) + "\n")
    head = ["signal", "at_s", "folds_recorded_before_signal", "exit_code", "stopped_s", "workers_gone_s",
            "resume_reused", "identical", "running_mlflow_runs_after_resume"]
    kills = [t for t in trials if not t["finished_before_signal"]]
    lines = [f"# Chaos check\n\nMeasured by `python benchmarks/chaos.py --kills {summary['kills']} --seed "
             f"{summary['seed']}` ({os.cpu_count()} cores). {__doc__.split(chr(10), 4)[4].strip()}\n",
             f"**{summary['kills']} kills, {summary['identical']} identical** "
             f"({', '.join(f'{n} {s}' for s, n in summary['by_signal'].items())}). Fold processes gone within "
             f"10 s of the signal: {summary['workers_gone_within_10_s']} of {summary['kills']}; MLflow runs left "
             f"RUNNING after the resumes: {summary['mlflow_runs_left_running']}; tracebacks: "
             f"{summary['tracebacks']}. The uninterrupted run took {summary['reference_wall_s']} s; "
             f"{summary['finished_before_signal']} more trials finished before their signal (in chaos.json, "
             "not counted as kills).\n",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(t[h]) for h in head) + " |" for t in kills]
    (out / "chaos.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mer-chaos-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    try:
        start = time.monotonic()
        subprocess.run(command(work / "reference", uri), check=True, capture_output=True, timeout=600)
        reference_s = time.monotonic() - start
        reference = predictions(work / "reference")
        trials: list[dict] = []
        while sum(not t["finished_before_signal"] for t in trials) < args.kills:  # a run may finish first
            delay, signame = rng.uniform(0.2, reference_s), rng.choice(SIGNALS)
            shutil.rmtree(work / "cache", ignore_errors=True)
            trials.append(trial(work, uri, reference, delay, signame))
            print(f"{len(trials)}: {json.dumps(trials[-1])}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kills = [t for t in trials if not t["finished_before_signal"]]
    summary = {"kills": len(kills), "identical": sum(t["identical"] for t in kills), "trials": len(trials),
               "finished_before_signal": len(trials) - len(kills), "reference_wall_s": round(reference_s, 1),
               "workers_gone_within_10_s": sum(t["workers_gone_in_time"] for t in kills),
               "mlflow_runs_left_running": sum(t["running_mlflow_runs_after_resume"] for t in trials),
               "tracebacks": sum(t["traceback"] for t in trials), "seed": args.seed,
               "by_signal": {s: sum(t["signal"] == s for t in kills) for s in SIGNALS}}
    write_outputs(args.out, summary, trials)
    print(f"{summary['kills']} kills, {summary['identical']} identical")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child(sys.argv[2:])
    else:
        main()
