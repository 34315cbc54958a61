"""The command line: listing, clear one-line errors with non-zero exit codes."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from mercore.cli import cli


def test_help_lists_commands():
    out = CliRunner().invoke(cli, ["--help"])
    assert out.exit_code == 0
    for command in ("run", "plugins", "datasets", "synth", "profile"):
        assert command in out.output


def test_plugins_lists_registry_entries():
    out = CliRunner().invoke(cli, ["plugins"])
    assert out.exit_code == 0, out.output
    for name in ("mpfnet", "moext", "dfrnet", "ahmsanet", "rrmfnet"):
        assert name in out.output


def test_plugins_wraps_paper_titles_at_word_boundaries():
    """Titles were cut at 60 characters mid-word; now each wraps beneath the paper column, whole."""
    from mercore.catalogue import read_catalogue

    out = CliRunner().invoke(cli, ["plugins"], env={"COLUMNS": "100"})
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert all(len(line) <= 100 for line in lines)
    words = " ".join(line[51:].strip() for line in lines[1:]).split()
    for entry in read_catalogue().values():
        title = entry.get("paper", {}).get("title", "").split()
        assert any(words[i:i + len(title)] == title for i in range(len(words))), title


def test_plugins_info_and_unknown_name():
    out = CliRunner().invoke(cli, ["plugins", "info", "mpfnet"])
    assert out.exit_code == 0 and "reported" in out.output
    out = CliRunner().invoke(cli, ["plugins", "info", "nope"])
    assert out.exit_code == 2 and "unknown plugin 'nope'; choose one of:" in out.output  # bad input


def test_unknown_plugin_is_a_one_line_error(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "nope", "--no-tracking", "--cache-dir", str(tmp_path)])
    assert out.exit_code == 2  # bad input, as a bad option is
    assert "Error: unknown method 'nope'; choose one of:" in out.output
    assert "Traceback" not in out.output


def test_bad_workers_value_names_the_option(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "nope", "--workers", "many", "--cache-dir", str(tmp_path)])
    assert out.exit_code == 2
    assert "--workers" in out.output and "'many'" in out.output


def test_datasets_lists_builtin_adapters():
    out = CliRunner().invoke(cli, ["datasets"])
    assert out.exit_code == 0, out.output
    assert "synthetic" in out.output and "casme2" in out.output


def test_config_prints_what_run_would_use():
    import yaml

    from mercore.plugins import load_registry
    from mercore.runner import run_config
    from mercore.spec import RunSpec

    out = CliRunner().invoke(cli, ["config", "--plugin", "ststnet", "--dataset", "megc2019-flow", "--device", "cpu",
                                   "--set", "train.epochs=7"])
    assert out.exit_code == 0, out.output
    printed = yaml.safe_load(out.output)
    registry = load_registry(only=["ststnet"])
    expected = run_config(RunSpec("ststnet", dataset="megc2019-flow", overrides=["train.epochs=7"]), registry, "cpu")
    assert printed == expected
    assert printed["features"]["source"] == "release" and printed["meta"]["profile"] == "quick"
    assert printed["train"]["epochs"] == 7 and printed["meta"]["inputs"] == "flow-release"
    bad = CliRunner().invoke(cli, ["config", "--plugin", "ststnet", "--set", "train.lrr=1"])
    assert bad.exit_code == 2 and "unknown config key 'train.lrr'" in bad.output and "Traceback" not in bad.output


BAD_VALUES = [
    (["--set", "train.epochs=0"], "config key 'train.epochs': 0 is not allowed; expected an integer >= 1"),
    (["--set", "train.epochs=-3"], "config key 'train.epochs': -3 is not allowed; expected an integer >= 1"),
    (["--set", "train.epochs=abc"], "config key 'train.epochs' (from --set): expected an integer (like the default 10), got 'abc'"),
    (["--set", "train.epochs=2.5"], "config key 'train.epochs' (from --set): expected an integer (like the default 10), got 2.5"),
    (["--set", "train.lr=abc"], "config key 'train.lr' (from --set): expected a finite number (like the default 0.05), got 'abc'"),
    (["--set", "train.batch_size=0"], "config key 'train.batch_size': 0 is not allowed; expected an integer >= 1"),
    (["--set", "train.optimizer=nosuch"], "config key 'train.optimizer': 'nosuch' is not allowed; expected one of adam, adamw, sgd"),
    (["--set", "run.seed=hello"], "config key 'run.seed' (from --set): expected an integer (like the default 0), got 'hello'"),
    (["--subjects", "s0"], "--subjects s0: leave-one-subject-out needs at least 2 subjects, got 1 (toy/s0)"),
    (["--subjects", "s0", "--subjects", "toy/s0"], "--subjects s0 toy/s0: leave-one-subject-out needs at least 2 "
                                                   "subjects, got 1 (toy/s0)"),
]


@pytest.mark.parametrize("args, message", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_values_stop_before_any_work_with_one_line_and_exit_2(toy_cli, args, message):
    out = toy_cli(*args)
    assert out.exit_code == 2, out.output
    assert out.output.strip() == f"Error: {message}"
    assert not (toy_cli.cache / "features").exists() and not (toy_cli.cache / "runs").exists()
    assert not toy_cli.db.exists()  # no MLflow run was started, so none is left FAILED


def test_cuda_device_without_cuda_is_a_one_line_error(toy_cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = toy_cli("--device", "cuda")
    assert out.exit_code == 2
    assert out.output.strip() == "Error: --device cuda: CUDA is not available on this machine (use auto or cpu)"
    assert not (toy_cli.cache / "features").exists()


def test_exponent_learning_rate_is_a_number(toy_cli):
    out = toy_cli("--set", "train.lr=1e-3", "--set", "train.epochs=1", "--subjects", "s0", "--subjects", "s1",
                  "--no-tracking")
    assert out.exit_code == 0, out.output
    (config,) = toy_cli.cache.glob("runs/*/artifacts/config.yaml")
    assert "lr: 0.001\n" in config.read_text()


def test_rerun_says_how_many_folds_it_reused_and_why_it_computed_the_others(toy_cli):
    args = ("--subjects", "s0", "--subjects", "s1", "--subjects", "s2", "--workers", "0", "--no-tracking")
    assert toy_cli(*args).exit_code == 0
    (record,) = toy_cli.cache.glob("runs/*/folds/001.json")
    record.unlink()
    out = toy_cli(*args)
    assert out.exit_code == 0, out.output
    assert "2 fold(s) reused from an earlier identical run (--fresh recomputes them); 1 computed: not run before (1)" \
        in out.output


def test_skip_invalid_reports_each_skipped_row_and_records_them(diff_registry, corpus, sheet, tmp_path,
                                                                monkeypatch, _migrated_store):
    import json
    import shutil

    import mlflow

    import mercore.runner

    monkeypatch.setattr(mercore.runner, "load_method", lambda registry, name: (diff_registry, diff_registry.method(name)))
    rows = sheet.read()
    rows[1][6] = "bliss"                                    # sheet row 3: an emotion no task knows
    rows[5][1] = "EP99_99"                                  # sheet row 7: a clip folder that is not there
    sheet.write(rows)
    shutil.copy(_migrated_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", "--plugin", "idnet", "--dataset", "casme2", "--data-root", str(corpus), "--task", "sde5", "-q",
            "--workers", "0", "--cache-dir", str(tmp_path / "cache"), "--tracking-uri", uri]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 1 and "(pass --skip-invalid to leave such rows out)" in out.output
    out = CliRunner().invoke(cli, [*args, "--skip-invalid"])
    assert out.exit_code == 0, out.output
    coding = corpus / "CASME2-coding-synthetic.csv"
    expected = [f"{coding} row 3 ({rows[1][0]}/{rows[1][1]}): unknown emotion 'bliss'",
                f"{coding} row 7 ({rows[5][0]}/EP99_99): clip folder "]
    printed = [line.removeprefix("skipped: ") for line in out.output.splitlines() if line.startswith("skipped: ")]
    assert len(printed) == 2 and all(p.startswith(e) for p, e in zip(printed, expected))
    assert "2 annotation row(s) skipped (--skip-invalid)" in out.output
    (summary,) = (tmp_path / "cache").glob("runs/*/artifacts/summary.json")
    assert json.loads(summary.read_text())["skipped"] == printed and json.loads(summary.read_text())["samples"] == 10
    client = mlflow.tracking.MlflowClient(uri)
    (parent,) = [r for r in client.search_runs([client.get_experiment_by_name("mer").experiment_id])
                 if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.metrics["skipped_rows"] == 2
    assert "skipped.txt" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_run_with_the_paper_profile_on_a_raw_corpus_without_dlib_is_refused_in_one_line(monkeypatch, tmp_path):
    import importlib

    monkeypatch.setattr(importlib.import_module("mercore.face.landmarks"), "dlib_installed", lambda: False)
    out = CliRunner().invoke(cli, ["run", "--plugin", "ststnet", "--dataset", "casme2", "--data-root", str(tmp_path),
                                   "--profile", "paper", "--no-tracking", "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 2, out.output
    (line,) = [line for line in out.output.splitlines() if line.strip()]
    assert "paper profile crops faces" in line and "mercore[dlib]" in line and "features.align=none" in line
    assert "Traceback" not in out.output and not (tmp_path / "cache").exists()
