"""The command line: listing, clear one-line errors with non-zero exit codes."""
from __future__ import annotations

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


def test_plugins_info_and_unknown_name():
    out = CliRunner().invoke(cli, ["plugins", "info", "mpfnet"])
    assert out.exit_code == 0 and "reported" in out.output
    out = CliRunner().invoke(cli, ["plugins", "info", "nope"])
    assert out.exit_code == 1 and "unknown plugin 'nope'; choose one of:" in out.output


def test_unknown_plugin_is_a_one_line_error(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "nope", "--no-tracking", "--cache-dir", str(tmp_path)])
    assert out.exit_code == 1
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

    out = CliRunner().invoke(cli, ["config", "--plugin", "ststnet", "--dataset", "megc2019-flow", "--device", "cpu",
                                   "--set", "train.epochs=7"])
    assert out.exit_code == 0, out.output
    printed = yaml.safe_load(out.output)
    registry = load_registry(only=["ststnet"])
    expected = run_config(registry.method("ststnet"), registry, dataset="megc2019-flow", device="cpu",
                          overrides=["train.epochs=7"])
    assert printed == expected
    assert printed["features"]["source"] == "release" and printed["meta"]["profile"] == "quick"
    assert printed["train"]["epochs"] == 7 and printed["meta"]["inputs"] == "flow-release"
    bad = CliRunner().invoke(cli, ["config", "--plugin", "ststnet", "--set", "train.lrr=1"])
    assert bad.exit_code == 1 and "unknown config key 'train.lrr'" in bad.output and "Traceback" not in bad.output
