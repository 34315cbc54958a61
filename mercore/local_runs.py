"""``mer runs``: the run folders under a cache (``<cache>/runs/<method>-<dataset>-<hash>``) as a table.

Folder names are hashes of a run's identity, so this reads each folder's config (the finished
run's ``artifacts/config.yaml``, or the ``config.yaml`` ``mer run`` writes when it starts) and
says what the run was: method, variant, dataset, profile, seed, the config keys that differ from
that profile's defaults, folds done, UF1/UAR once finished.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .config import flatten

UNKNOWN = "?"


@dataclass
class LocalRun:
    """One run folder, as far as its files tell."""

    folder: Path
    method: str
    variant: str | None
    dataset: str
    task: str
    profile: str
    seed: int | None
    folds_done: int
    folds: int | None
    uf1: float | None = None
    uar: float | None = None
    modified: float = 0.0
    overrides: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # why the folder could not be read, if it could not

    @property
    def finished(self) -> bool:
        return self.uf1 is not None

    @property
    def date(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.modified)) if self.modified else UNKNOWN


def config_differences(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys whose value in ``config`` is not the one in ``defaults`` (``meta`` left out: it
    records the run, it does not configure it)."""
    ours = {k: v for k, v in flatten(config).items() if not k.startswith("meta.")}
    theirs = {k: v for k, v in flatten(defaults).items() if not k.startswith("meta.")}
    return {k: v for k, v in sorted(ours.items()) if k not in theirs or theirs[k] != v}


def _started(folder: Path) -> tuple[dict[str, Any] | None, int, float]:
    """(the config ``mer run`` wrote when it started, fold records, newest record's time)."""
    records = sorted((folder / "folds").glob("*.json"))
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        config = None  # runs of mer before 2026-12-07 wrote their config only when finished
    newest = max((r.stat().st_mtime for r in records), default=0.0)
    return config, len(records), newest


def read_run(folder: Path, defaults: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] | None = None
             ) -> LocalRun:
    """What ``folder`` holds; ``defaults(config)`` gives the profile defaults to diff against (None
    when the method is not installed)."""
    config, done, modified = _started(folder)
    summary: dict[str, Any] = {}
    summary_path, config_path = folder / "artifacts" / "summary.json", folder / "artifacts" / "config.yaml"
    problem = None
    try:
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            modified = max(modified, summary_path.stat().st_mtime)
        if config_path.is_file():
            config = yaml.safe_load(config_path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        problem = f"unreadable artifacts ({type(exc).__name__})"
    if not isinstance(config, dict) or not isinstance(config.get("meta"), dict):
        return LocalRun(folder, UNKNOWN, None, UNKNOWN, UNKNOWN, UNKNOWN, None, done, None, modified=modified,
                        problem=problem or "no readable config")
    meta = config["meta"]
    overall = summary.get("overall") or {}
    base = defaults(config) if defaults else None
    return LocalRun(folder, str(meta.get("method", UNKNOWN)), meta.get("variant"),
                    str(meta.get("dataset", UNKNOWN)), str(meta.get("task", UNKNOWN)),
                    str(meta.get("profile", UNKNOWN)), (config.get("run") or {}).get("seed"), done,
                    meta.get("subjects"), overall.get("uf1"), overall.get("uar"), modified,
                    config_differences(config, base) if base is not None else {}, problem)


def list_runs(cache_dir: Path | str, defaults: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] | None = None
              ) -> list[LocalRun]:
    """Every folder under ``<cache_dir>/runs``, newest first."""
    root = Path(cache_dir) / "runs"
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return sorted((read_run(f, defaults) for f in folders), key=lambda r: r.modified, reverse=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, (list, dict)) \
        else str(value)


def _score(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def runs_table(runs: list[LocalRun]) -> str:
    """A Markdown table of ``runs`` (one row each)."""
    lines = ["| folder | method | variant | dataset | profile | seed | folds | UF1 | UAR | date | differs from profile |",
             "|---|---|---|---|---|---:|---|---:|---:|---|---|"]
    for r in runs:
        folds = f"{r.folds_done}/{r.folds}" if r.folds else str(r.folds_done)
        differs = ", ".join(f"{k}={_short(v)}" for k, v in r.overrides.items()) or "-"
        if r.problem:
            differs = f"({r.problem})"
        lines.append(f"| {r.folder.name} | {r.method} | {r.variant or '-'} | {r.dataset} | {r.profile} | "
                     f"{r.seed if r.seed is not None else '-'} | {folds} | {_score(r.uf1)} | {_score(r.uar)} | "
                     f"{r.date} | {differs} |")
    return "\n".join(lines)
