"""Every key of every method's resolved config, set in turn to a wrong type, an empty value, a
non-finite value and an out-of-range value, is refused before any work in one line naming the key
(issue 34, item 11): a value found bad only inside a fold fails after minutes of work, or never.

The walk calls :func:`mercore.runner.check_before_work`, the checks `mer run` makes before it
reads, generates or computes anything; a test below runs `mer run` itself to show that a refused
value leaves the cache folder empty.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from click.testing import CliRunner

from mercore.cli import cli
from mercore.config import ConfigError
from mercore.plugins import load_registry
from mercore.runner import check_before_work, run_config
from mercore.spec import RunSpec

METHODS = ("ahmsanet", "dfrnet", "htnet", "moext", "mpfnet", "rrmfnet", "ststnet")

#: (method, key pattern, kind) -> why that value is right to accept
EXEMPT: dict[tuple[str, str, str], str] = {
    ("*", "*train.fit_check.fallback_lr", "empty"): "[] turns the fit check off (FitCheck's docstring)",
    ("*", "*train.perturbation.image_streams", "empty"): "a method may have no image stream (STSTNet, HTNet)",
    ("*", "*train.perturbation.flow_streams", "empty"): "a method may have no flow stream (MoExt)",
    ("*", "*train.perturbation.*_streams", "range"): "read only when perturbation training is enabled, and "
                                                      "checked then (test_a_perturbed_stream_the_method_lacks...)",
    ("moext", "model.branch_fc", "empty"): "hidden FC widths: none is a branch of one linear layer",
    ("*", "features.streams.*.release.*", "*"): "a stream's entry for a precomputed-flow release, which the walk's "
                                               "synthetic clips do not read; the extractor checks it on a release",
    ("ahmsanet", "features.flow_uvs.*", "*"): "parameters of a stream the run does not read (features.stream "
                                              "picks one section); its extractor checks them when picked",
    ("ahmsanet", "features.release_flow.*", "*"): "as features.flow_uvs: a stream the run does not read",
}


def leaves(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every value (an empty section is a value); ``meta`` is the core's record."""
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path == "meta":
            continue
        if isinstance(value, Mapping) and value:
            yield from leaves(value, path)
        else:
            yield path, value


def bad_values(default: Any) -> dict[str, str]:
    """``--set`` values of each kind that a key with this default must refuse."""
    if isinstance(default, bool):
        return {"type": "3", "empty": '""', "nonfinite": ".nan"}
    if isinstance(default, (int, float)):
        return {"type": "abc", "empty": '""', "nonfinite": ".inf", "range": "-1"}
    if isinstance(default, str):
        return {"type": "7", "empty": '""', "range": "nosuch"}
    if isinstance(default, list):
        out = {"type": "abc", "empty": "[]"}
        if default and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default):
            out.update(nonfinite="[.inf]", range="[-1]")
        elif default and all(isinstance(v, str) for v in default):
            out["range"] = "[nosuch]"
        return out
    if default is None:  # the type is the key's own: every kind of value is wrong for some key
        return {"type": "abc", "nonfinite": ".inf", "range": "-1"}
    return {"type": "5"}  # an empty section: a value where a mapping belongs


def exemption(method: str, key: str, kind: str) -> str | None:
    return next((why for (m, pattern, k), why in EXEMPT.items()
                 if fnmatch.fnmatch(method, m) and fnmatch.fnmatch(key, pattern) and fnmatch.fnmatch(kind, k)), None)


def cases(method: str) -> list[tuple[str, str, str]]:
    registry = load_registry(only=[method])
    config = run_config(RunSpec(method), registry)
    return [(key, kind, value) for key, default in leaves(config) for kind, value in bad_values(default).items()
            if exemption(method, key, kind) is None]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_key_refuses_a_wrong_value_before_any_work(method):
    registry = load_registry(only=[method])
    method_obj = registry.method(method)
    accepted, unnamed = [], []
    for key, kind, value in cases(method):
        try:
            spec = RunSpec(method_obj, overrides=[f"{key}={value}"])
            config = run_config(spec, registry)
            check_before_work(method_obj, config, registry, spec)
        except ConfigError as exc:
            message = str(exc)
            if "\n" in message or key.rpartition(".")[2] not in message:
                unnamed.append(f"{key}={value}: {message}")
            continue
        accepted.append(f"{key}={value} ({kind})")
    assert not accepted, f"{method} accepts: {accepted}"
    assert not unnamed, f"{method} refuses without naming the key in one line: {unnamed}"


def test_the_walk_covers_every_method_and_kind():
    assert sorted(load_registry().list("methods")) == sorted(METHODS)
    kinds = {kind for key, kind, value in cases("ststnet")}
    assert kinds == {"type", "empty", "nonfinite", "range"}


@pytest.mark.parametrize("method", METHODS)
def test_a_refused_key_leaves_nothing_behind(tmp_path, monkeypatch, method):
    """Through `mer run`: exit 2, one line, no corpus written and no run folder."""
    import mercore.evaluation.loso

    def reached(*args, **kwargs):
        raise AssertionError("the folds were reached")

    monkeypatch.setattr(mercore.evaluation.loso.LOSOEvaluator, "evaluate", reached)
    out = CliRunner().invoke(cli, ["run", "--plugin", method, "--no-tracking", "--cache-dir", str(tmp_path / "c"),
                                   "--set", "evaluation.bootstrap.resamples=0"])
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1, out.output
    assert lines[0].startswith("Error: config key 'evaluation.bootstrap.resamples': 0 is not allowed")
    assert not (tmp_path / "c").exists()


def test_a_perturbed_stream_the_method_lacks_is_refused_when_perturbation_is_on(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "ststnet", "--variant", "pt", "--no-tracking", "--cache-dir",
                                   str(tmp_path), "--set", "train.perturbation.flow_streams=[flwo]"])
    assert out.exit_code == 2, out.output
    assert out.output.strip() == ("Error: ststnet: train.perturbation.flow_streams names ['flwo'], which the method "
                                  "has no input stream of; its streams: flow")
    assert list(tmp_path.iterdir()) == []
