"""``mer fit``: the model to use after an evaluation, trained on every subject it evaluated.

A LOSO run estimates how a method does on a subject it never saw; the model one then deploys is
trained on all of those subjects with the same config (profile, overrides, seed), which is what
the estimate describes. This trains that model from a finished run folder -- its config and the
clips its folds tested, nothing else -- and writes a model folder that ``mer predict --model``
reads: ``model.pt`` (state dict), ``norm.pt`` (the training statistics, when inputs were
standardised), ``config.yaml`` and ``model.json`` (method, classes, data, versions, the run).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import yaml

from .config import ConfigError, deep_merge, flatten
from .core_settings import validate_config
from .data.dataset import LoadedDataset, LoadOptions
from .data.tensors import TensorSet
from .environment import software_versions
from .evaluation.fold import fit_model
from .features.store import build_inputs
from .io import atomic_write_text
from .plugins import Registry
from .protocols import Fold

MODEL_INFO = "model.json"


def evaluated_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(config, summary, sample keys) of the finished run in ``run_dir``; a ConfigError naming
    what is missing otherwise."""
    config_path, summary_path = run_dir / "artifacts" / "config.yaml", run_dir / "artifacts" / "summary.json"
    if not config_path.is_file() or not summary_path.is_file():
        raise ConfigError(f"{run_dir} is not a finished run folder (no artifacts/config.yaml and summary.json); "
                          "`mer runs` lists the local ones")
    try:
        config = yaml.safe_load(config_path.read_text())
        summary = json.loads(summary_path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{run_dir}: cannot read its config or summary ({type(exc).__name__})") from None
    keys: list[str] = []
    for record in sorted((run_dir / "folds").glob("*.json")):
        try:
            keys += json.loads(record.read_text())["keys"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(f"{record}: unreadable fold record; rerun the evaluation to rebuild it") from None
    if not isinstance(config, dict) or "meta" not in config or not keys:
        raise ConfigError(f"{run_dir}: the run folder holds no config meta or no fold records")
    return config, summary, keys


def completed_config(evaluated: dict[str, Any], method: Any, registry: Registry, run_dir: Path
                     ) -> tuple[dict[str, Any], list[str]]:
    """The run's config over today's defaults of its method, variant, profile and dataset, and the
    keys that came from those defaults: a run made before a key existed (say
    ``train.weight_averaging``) gets the default, which is the old behaviour; a key today's code no
    longer knows is an error naming it."""
    from .runner import run_config
    from .spec import RunSpec

    meta = evaluated["meta"]
    current = run_config(RunSpec(method, dataset=meta["dataset"], variant=meta.get("variant"), profile=meta["profile"]),
                         registry)
    settings = {k: v for k, v in evaluated.items() if k != "meta"}
    config = deep_merge(current, settings, strict=True, origin=f" (in the config of {run_dir})")
    config["meta"] = {**current["meta"], **meta}
    given = set(flatten(settings))
    added = sorted(k for k in flatten({k: v for k, v in current.items() if k != "meta"}) if k not in given)
    return config, added


def evaluated_samples(data: LoadedDataset, keys: list[str], run_dir: Path) -> LoadedDataset:
    """The clips the run evaluated, in the run's order: refuses data that lack any of them (another
    data root or release), since the model would then not be the one the estimate describes."""
    by_key = {s.key: s for s in data.samples}
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ConfigError(f"{len(missing)} of the {len(keys)} clips the run in {run_dir} evaluated are not in these "
                          f"data (e.g. {missing[0]}); give the --data-root and -D options it ran with")
    return LoadedDataset(data.name, data.task, data.labels, [by_key[k] for k in keys], data.skipped)


def fit_final(run_dir: Path | str, *, data_root: Path | str | None = None,
              dataset_options: Mapping[str, Any] | None = None, out: Path | str | None = None,
              cache_dir: Path | str = ".mer", registry: Registry | None = None, progress: bool = True,
              notify: Callable[[str], None] | None = None) -> Path:
    """Train the method of the finished run in ``run_dir`` on every clip its folds tested, with
    its config; returns the model folder (default ``<cache_dir>/models/<run folder name>``)."""
    from .runner import check_dataset_options, check_loso_subjects, check_method, load_method

    run_dir = Path(run_dir)
    evaluated, summary, keys = evaluated_run(run_dir)
    meta = evaluated["meta"]
    registry, method = load_method(registry, meta["method"])
    config, added = completed_config(evaluated, method, registry, run_dir)
    core = validate_config(config)
    if added and notify:
        notify(f"{len(added)} config key(s) newer than the run take today's defaults: {', '.join(added)}")
    ds = registry.dataset(meta["dataset"])
    if ds.requires_root and data_root is None:
        raise ConfigError(f"the run used dataset {meta['dataset']!r}: give its --data-root")
    check_dataset_options(ds, core.data.options, dataset_options or {})
    cache_dir = Path(cache_dir)
    extra = {**core.data.options, **dict(dataset_options or {})}
    loaded = ds.load(Path(data_root).expanduser() if data_root else None,
                     LoadOptions(task=meta["task"], cache_dir=cache_dir, extra=extra))
    data = evaluated_samples(loaded, keys, run_dir)
    check_loso_subjects(data, None)
    if list(data.labels.classes) != list(summary["classes"]):
        raise ConfigError(f"the data's classes {list(data.labels.classes)} are not the run's {summary['classes']}")
    check_method(method, config, data.labels.num_classes)
    out = Path(out) if out is not None else cache_dir / "models" / run_dir.name
    started = time.perf_counter()
    store = registry.feature_store(cache_dir)
    requests = method.features(config)
    inputs = build_inputs(store, requests, data.samples, workers=core.run.feature_workers,
                          progress=progress)
    labels = torch.tensor([s.label(data.task) for s in data.samples], dtype=torch.long)
    full = TensorSet(inputs, labels, list(data.samples))
    everyone = Fold(0, "all subjects", tuple(range(len(data.samples))), ())
    if notify:
        notify(f"training {method.name} on all {len(data.subjects)} subjects ({len(data.samples)} clips)")
    fitted = fit_model(method, full, everyone, requests, config, data, store, out, progress=progress,
                       datasets=registry.dataset_adapters())
    fitted.save(out)
    distribution = registry.distribution_of(method.name)
    info = {
        "method": method.name, "variant": meta.get("variant"), "dataset": meta["dataset"], "task": data.task,
        "profile": meta.get("profile"), "classes": list(data.labels.classes), "subjects": len(data.subjects),
        "samples": len(data.samples), "train_samples": len(fitted.data.train),
        "validation_samples": len(fitted.data.val) if fitted.data.val is not None else 0,
        "evaluated_run": str(run_dir), "defaults_added": added, "evaluated": {k: summary["overall"][k] for k in ("uf1", "uar")},
        "seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": software_versions(distribution),
    }
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(out / MODEL_INFO, json.dumps(info, indent=2) + "\n")
    return out
