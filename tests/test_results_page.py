"""docs/results.md is what `benchmarks/composite.py report` makes of the committed run outputs, and
nothing else: regenerated here from benchmarks/results/ and compared with the committed page."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("composite_benchmark", REPO / "benchmarks" / "composite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def composite(tmp_path, monkeypatch):
    module = load_script()
    monkeypatch.setattr(module, "PAGE", tmp_path / "results.md")
    return module


def test_committed_page_is_regenerated_from_the_committed_runs(composite):
    text = composite.write_page(composite.load_entries())
    assert text == (REPO / "docs" / "results.md").read_text(), \
        "docs/results.md differs from what benchmarks/composite.py report makes of benchmarks/results/"


def copy_of_results(composite, tmp_path, monkeypatch):
    """The committed results copied to ``tmp_path`` (the script reads the copy) and the first
    entry's folder there, to damage or remove."""
    found = composite.load_entries()
    if not found:
        pytest.skip("no composite run committed")
    name = next(iter(found))
    results = tmp_path / "results"
    shutil.copytree(composite.RESULTS, results)
    monkeypatch.setattr(composite, "RESULTS", results)
    return name, results / name.replace(":", "-")


def test_a_missing_run_is_listed_never_filled(composite, tmp_path, monkeypatch):
    name, folder = copy_of_results(composite, tmp_path, monkeypatch)
    shutil.rmtree(folder)
    text = composite.write_page(composite.load_entries())
    assert f"- {name}" in text.split("### Still missing")[1].split("###")[0]
    table = text.split("## The MEGC2019 composite")[1].split("## Earlier")[0]
    method, _, variant = name.partition(":")
    assert f"| {method} | {variant} |" not in table


def test_a_damaged_run_folder_is_an_error_naming_it(composite, tmp_path, monkeypatch):
    _, folder = copy_of_results(composite, tmp_path, monkeypatch)
    (next(folder.iterdir()) / "predictions.csv").write_text("fold,key\nx,y\n")
    from mercore.reporting.html import ReportError

    with pytest.raises(ReportError, match="predictions.csv"):
        composite.load_entries()


def below_floor(composite):
    found = composite.load_entries()
    below = [n for n, runs in found.items()
             if sum(r.scores().uf1 for r in runs.values()) / len(runs) < composite.EVERY_METHOD_UF1]
    if not below:
        pytest.skip("no committed method below the floor")
    return found, below[0]


@pytest.mark.parametrize("train_uf1, verdict", [(0.95, "it fits its training subjects"), (0.50, "does not fit its own training")])
def test_a_method_below_the_floor_is_explained_by_its_fit_on_training_clips(
        composite, tmp_path, monkeypatch, train_uf1, verdict):
    found, name = below_floor(composite)
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"rows": [{"entry": name, "train_uf1": train_uf1, "train_loss_last": 0.3}] * 3}))
    monkeypatch.setattr(composite, "FIT_FILE", fit)
    line = next(x for x in composite.aims_lines(found, []).splitlines() if x.startswith(f"- {name}:"))
    assert f"UF1 {train_uf1:.3f} on its training clips (mean of 3 folds" in line
    assert verdict in line


def test_an_unmeasured_fit_is_said_not_guessed(composite, tmp_path, monkeypatch):
    found, name = below_floor(composite)
    monkeypatch.setattr(composite, "FIT_FILE", tmp_path / "absent.json")
    text = composite.aims_lines(found, [])
    assert f"- {name}: not measured yet" in text
    assert "how far" in text and f"UF1 >= {composite.ANCHOR_UF1}" in text


def test_a_speed_only_entry_is_never_the_best_figure(composite, monkeypatch):
    found = composite.load_entries()
    best = composite.best_line(found).split("**")[1].split()[0]  # "entry:variant"
    monkeypatch.setattr(composite, "SPEED_ONLY", (best,))
    assert f"**{best} " not in composite.best_line(found)
    assert f"{best} (single model" not in composite.aims_lines(found, [])


def test_what_was_tried_is_measured_over_the_seeds_both_entries_have(composite):
    found = composite.load_entries()
    for a, b in composite.PAIRS:
        seeds = sorted(set(found.get(a, {})) & set(found.get(b, {})))
        if seeds and a.split(":")[0] == b.split(":")[0] and b not in composite.SPEED_ONLY:
            delta = sum(found[b][s].scores().uf1 - found[a][s].scores().uf1 for s in seeds) / len(seeds)
            line = next(x for x in composite.aims_lines(found, []).splitlines() if x.startswith(f"- {b} against {a}"))
            assert f"{delta:+.3f} UF1 over the same seeds" in line


def _set_timing(composite, entry: str, wall: float | None, machine: str) -> None:
    for folder in composite.stored_folder(entry, 0).parent.glob("seed*"):
        info = json.loads((folder / "folds.json").read_text())
        info.update(loso_wall_s=wall, machine=machine)
        (folder / "folds.json").write_text(json.dumps(info))


@pytest.mark.parametrize("fast_wall, machine, verdict", [
    (600.0, "m1", "**Adopted** by the rule"),        # 1.5x faster, same machine
    (750.0, "m1", "under 1.3x"),                     # 1.2x: not enough
    (600.0, "m2", "no ststnet:base run on its machine (m2)"),  # another machine: no speed verdict
])
def test_a_speed_setting_is_judged_by_the_written_rule(composite, tmp_path, monkeypatch, fast_wall, machine, verdict):
    """The rule of docs/protocols.md, with SWA standing in for a speed setting (its result is within
    +-0.02 of ststnet:base over three seeds): wall time on the same machine decides."""
    found = composite.load_entries()
    if not {"ststnet:base", "ststnet:swa"} <= set(found):
        pytest.skip("ststnet runs not committed")
    copy_of_results(composite, tmp_path, monkeypatch)
    monkeypatch.setattr(composite, "SPEED_ONLY", ("ststnet:swa",))
    _set_timing(composite, "ststnet:base", 900.0, "m1")
    _set_timing(composite, "ststnet:swa", fast_wall, machine)
    line = composite.speed_rule_lines(found)
    assert line.startswith("- ststnet:swa") and verdict in line
    assert ("**Adopted**" in line) == (verdict == "**Adopted** by the rule")


def test_a_loso_wall_time_is_measured_or_summed_over_its_fold_processes(composite):
    """The fallback for runs that reused folds: their folds' wall times over the fold processes.
    Checked against every committed run whose whole LOSO was timed (the docstring's 1 to 1.3 %)."""
    info = {"loso_wall_s": None, "workers": "auto", "machine": "x86_64, AMD EPYC, 2 cores",
            "fold_wall_s": [30.0, 50.0, 40.0], "fold_cpu_s": [20.0, 45.0, 25.0], "trainings": [1, 2, 1]}
    assert composite.loso_wall_s(info) == 60.0 and composite.loso_wall_s({**info, "workers": "3"}) == 40.0
    assert composite.loso_wall_s({**info, "loso_wall_s": 75.0}) == 75.0
    assert composite.cpu_per_training(info) == 22.5
    assert composite.cpu_per_training({k: v for k, v in info.items() if k != "trainings"}) is None
    timed = [json.loads(f.read_text()) for f in composite.RESULTS.glob("*/seed*/folds.json")]
    timed = [t for t in timed if t.get("loso_wall_s")]
    if not timed:
        pytest.skip("no fully timed run committed")
    for t in timed:
        summed = composite.loso_wall_s({**t, "loso_wall_s": None})
        assert abs(summed - t["loso_wall_s"]) <= 0.015 * t["loso_wall_s"], t["run_folder"]


def test_a_profile_uses_a_speed_setting_exactly_when_the_rule_adopted_it(composite):
    """The real-data profile of each speed-only entry's method turns its setting on if and only if
    the page's verdict is 'Adopted' (docs/protocols.md: nothing else may turn it on)."""
    from mercore.config import resolve_config
    from mercore.runner import load_method

    lines = composite.speed_rule_lines(composite.load_entries()).splitlines()
    for name in composite.SPEED_ONLY:
        entry = composite.BY_NAME[name]
        (key, value), = entry.overrides.items()
        _, method = load_method(None, entry.method)
        config = resolve_config(method, variant=entry.variant, profile="quick", inputs="flow-release")
        section, option = key.split(".")
        adopted = any(line.startswith(f"- {name}:") and "**Adopted**" in line for line in lines)
        assert (config[section][option] == value) == adopted, name
