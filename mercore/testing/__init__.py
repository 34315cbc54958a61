"""Contract tests for method plugins: one line in a plugin's test module checks that the method
registers, that its config layers resolve, that its model runs on real features, that a
tiny LOSO run completes and repeats exactly, and that it runs on a precomputed-flow release
exactly when it declares that input kind (and is refused before any work otherwise).

Either subclass the base class (pytest collects the subclass)::

    from mercore.testing import MethodContract

    class TestContract(MethodContract):
        plugin = "mer_mynet.plugin"         # module (or dotted name) holding the hook implementations
        method = "mynet"
        tiny_overrides = {"train.epochs": 2}  # optional; see below

or let the kit build that class into the module::

    from mercore.testing import method_contract_tests
    globals().update(method_contract_tests("mer_mynet.plugin", "mynet"))

A second helper pins a plugin's ``paper`` profile to its paper: :func:`paper_config_tests` takes
the paper's stated settings as a table, the deviations (key, the paper's value, ours, why), and the
choices the paper leaves open, and builds tests that fail when the resolved config drifts from
them, when a key of the config is in none of the three, or when a deviation lacks its own row
in the method doc's deviations table (``| Key | Paper | Ours | Why |``)::

    globals().update(paper_config_tests(MyNet(), PAPER, DEVIATIONS, doc=DOC, open_choices=OPEN))

The tiny run uses ``tiny_overrides`` from the class, else a ``tiny_overrides`` (or
``TINY_OVERRIDES``) attribute of the plugin module or of the method class, else every
``*.epochs`` key of the config set to 1. All checks run on CPU on a synthetic corpus of
3 subjects x 4 clips at 64 px, generated once per pytest session into a temporary cache that
every plugin's kit shares (so features of the same clips are computed once); the release run
uses a release of the same size written by ``mercore.testing.layouts.write_flow_release``.
"""
from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Mapping

import pytest
import torch
import yaml

from ..config import flatten, resolve_config
from ..method import Method

#: The tiny corpus every contract run shares (``dataset_options`` of the synthetic dataset).
CORPUS_OPTIONS: dict[str, Any] = {"subjects": 3, "clips_per_subject": 4, "size": 64}
SUBJECTS = ["sub01", "sub02", "sub03"]
VALID_INPUTS = {"clips", "flow-release"}
#: The tiny precomputed-flow release: (dataset, subject, clip, label) rows, 3 subjects x 4 clips.
RELEASE_ROWS = [("smic", f"s{s}", f"s{s}_c{c}", c % 3) for s in range(1, 4) for c in range(4)]


def _module(plugin: str | ModuleType | Any) -> Any:
    return importlib.import_module(plugin) if isinstance(plugin, str) else plugin


def default_tiny_overrides(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every integer ``...epochs`` setting set to 1: the smallest run most trainers accept."""
    return {k: 1 for k, v in flatten(config).items()
            if k.split(".")[-1] == "epochs" and isinstance(v, int) and not isinstance(v, bool)}


class MethodContract:
    """Base class of a plugin's contract tests; set ``plugin`` and ``method`` in a ``Test*`` subclass."""

    plugin: ClassVar[Any] = None
    method: ClassVar[str] = ""
    variant: ClassVar[str | None] = None
    profile: ClassVar[str | None] = "quick"  # used when the method has it; else the paper setup
    tiny_overrides: ClassVar[Mapping[str, Any] | None] = None
    subjects: ClassVar[list[str]] = SUBJECTS

    # helpers -----------------------------------------------------------------------------------
    @classmethod
    def _plugin_module(cls) -> Any:
        if cls.plugin is None or not cls.method:
            raise TypeError(f"{cls.__name__}: set the class attributes `plugin` and `method`")
        return _module(cls.plugin)

    @classmethod
    def registry(cls) -> Any:
        from ..plugins import load_registry

        return load_registry(only=[], extra_plugins=[(f"contract-{cls.method}", cls._plugin_module())], strict=True)

    @classmethod
    def method_obj(cls) -> Method:
        return cls.registry().method(cls.method)

    @classmethod
    def chosen_profile(cls, method: Method) -> str | None:
        return cls.profile if cls.profile and cls.profile in method.profiles() else None

    @classmethod
    def overrides(cls, method: Method) -> dict[str, Any]:
        """Tiny-run overrides (see the module docstring), always on CPU."""
        tiny = cls.tiny_overrides
        if tiny is None:
            module = cls._plugin_module()
            for owner in (module, type(method)):
                tiny = getattr(owner, "tiny_overrides", None) or getattr(owner, "TINY_OVERRIDES", None)
                if tiny is not None:
                    break
        if tiny is None:
            tiny = default_tiny_overrides(resolve_config(method, variant=cls.variant,
                                                         profile=cls.chosen_profile(method)))
        return {**dict(tiny), "run.device": "cpu"}

    @classmethod
    def tiny_run(cls, cache: Path, fresh: bool = True) -> Any:
        """The tiny LOSO run on the contract corpus (a RunResult)."""
        from ..runner import run
        from ..spec import ExecutionOptions, RunSpec, override_items

        torch.set_num_threads(1)
        registry = cls.registry()
        method = registry.method(cls.method)
        spec = RunSpec(method, variant=cls.variant, dataset="synthetic", dataset_options=dict(CORPUS_OPTIONS),
                       profile=cls.chosen_profile(method), overrides=override_items(cls.overrides(method)),
                       subjects=tuple(cls.subjects))
        return run(spec, ExecutionOptions(cache_dir=cache, fresh=fresh, progress=False, tracking=False),
                   registry=registry)

    @pytest.fixture(scope="class")
    @classmethod
    def mer_contract_cache(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """One cache folder per session (corpus + features), shared by every plugin's contract
        tests: the corpus is generated by the first class that asks, later ones find it."""
        from ..data.dataset import LoadOptions
        from ..plugins import load_registry

        cache = tmp_path_factory.getbasetemp() / "mer-contract-cache"
        load_registry(only=[]).dataset("synthetic").ensure(LoadOptions(cache_dir=cache, extra=dict(CORPUS_OPTIONS)))
        return cache

    @pytest.fixture(scope="class")
    @classmethod
    def mer_flow_release(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from .layouts import write_flow_release

        root = tmp_path_factory.getbasetemp() / "mer-contract-release"
        return root if (root / "labels.csv").is_file() else write_flow_release(root, RELEASE_ROWS)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_runs(cls, mer_contract_cache: Path) -> tuple[Any, Any]:
        """The same tiny LOSO run twice from scratch (``fresh``): for completeness and determinism."""
        return cls.tiny_run(mer_contract_cache), cls.tiny_run(mer_contract_cache)

    # the contract ------------------------------------------------------------------------------
    def test_registers_through_hooks(self) -> None:
        registry = self.registry()
        assert self.method in registry.methods, f"plugin registered no method {self.method!r}"
        assert registry.methods[self.method].plugin == f"contract-{self.method}"
        method = registry.method(self.method)
        assert isinstance(method, Method)
        assert method.name == self.method
        assert set(method.inputs) <= VALID_INPUTS and method.inputs, f"inputs must be some of {VALID_INPUTS}"
        if method.variants:
            assert method.default_variant in method.variants
        else:
            assert method.default_variant is None

    def test_config_round_trips_and_every_variant_and_profile_resolves(self) -> None:
        method = self.method_obj()
        default = method.default_config()
        assert yaml.safe_load(yaml.safe_dump(default, sort_keys=False)) == default, "config is not plain YAML data"
        profiles = method.profiles()
        assert yaml.safe_load(yaml.safe_dump(profiles)) == profiles
        variants: list[str | None] = [*method.variants] or [None]
        for variant in variants:
            for profile in ["paper", *profiles]:
                for inputs in method.inputs:
                    config = resolve_config(method, variant=variant, profile=profile, inputs=inputs)
                    assert config["meta"]["variant"] == (variant or method.default_variant)
                    assert yaml.safe_load(yaml.safe_dump(config)) == config
                    assert method.features(config), "a method needs at least one input stream"
        # the tiny overrides name existing keys (a typo would fail here, not in the run)
        resolve_config(method, variant=self.variant, profile=self.chosen_profile(method),
                       sets=[f"{k}={json.dumps(v)}" for k, v in self.overrides(method).items()])

    def test_forward_on_real_features(self, mer_contract_cache: Path) -> None:
        from ..data.dataset import LoadOptions
        from ..features.store import build_inputs

        torch.set_num_threads(1)
        registry = self.registry()
        method = registry.method(self.method)
        config = resolve_config(method, variant=self.variant, profile=self.chosen_profile(method))
        data = registry.dataset("synthetic").load(None, LoadOptions(cache_dir=mer_contract_cache,
                                                                    extra=dict(CORPUS_OPTIONS)))
        store = registry.feature_store(mer_contract_cache)
        batch = build_inputs(store, method.features(config), data.samples[:2], progress=False)
        for name, x in batch.items():
            assert x.shape[0] == 2 and x.dtype == torch.float32 and torch.isfinite(x).all(), name
        torch.manual_seed(0)
        model = method.build_model(config, data.labels.num_classes)
        for train_mode in (True, False):  # batch norm and dropout behave differently in the two modes
            model.train(train_mode)
            with torch.no_grad():
                logits = model(batch)
            assert logits.shape == (2, data.labels.num_classes), f"logits {tuple(logits.shape)}, train={train_mode}"
            assert torch.isfinite(logits).all(), f"non-finite logits, train={train_mode}"

    def test_tiny_loso_run_predicts_every_test_sample(self, contract_runs: tuple[Any, Any]) -> None:
        result = contract_runs[0]
        assert len(result.folds) == len(self.subjects)
        n_classes = len(result.class_names)
        for fold in result.folds:
            assert set(fold.subjects) == {fold.fold}
            assert len(fold.y_pred) == len(fold.keys) == len(fold.probabilities) > 0
            for probs in fold.probabilities:
                assert len(probs) == n_classes and all(math.isfinite(p) for p in probs)
                assert abs(sum(probs) - 1) < 1e-4
        assert set(result.metrics) >= {"uf1", "uar", "acc"}

    def test_runs_on_a_flow_release_exactly_when_it_declares_it(self, mer_flow_release: Path, tmp_path: Path) -> None:
        """No ``--set`` or ``--variant``: the method picks its release inputs from the input kind."""
        from ..config import ConfigError
        from ..runner import run
        from ..spec import ExecutionOptions, RunSpec, override_items

        torch.set_num_threads(1)
        registry = self.registry()
        method = registry.method(self.method)
        spec = RunSpec(method, dataset="megc2019-flow", data_root=mer_flow_release, variant=self.variant,
                       profile=self.chosen_profile(method), overrides=override_items(self.overrides(method)))
        options = ExecutionOptions(tracking=False, cache_dir=tmp_path, progress=False)
        if "flow-release" not in method.inputs:
            with pytest.raises(ConfigError, match=rf"^{self.method} needs .*; datasets it can use: "):
                run(spec, options, registry=registry)
            assert not any(tmp_path.iterdir()), "nothing may be computed before the refusal"
            return
        result = run(spec, options, registry=registry)
        assert result.config["meta"]["inputs"] == "flow-release"
        assert sum(len(f.y_pred) for f in result.folds) == len(RELEASE_ROWS)
        for request in method.features(result.config).values():  # no clip extractor: a release has no frames
            assert request.extractor.startswith("release_") or request.params.get("source") == "release", request

    def test_same_seed_gives_identical_predictions_on_cpu(self, contract_runs: tuple[Any, Any]) -> None:
        first, second = contract_runs
        assert [f.y_pred for f in first.folds] == [f.y_pred for f in second.folds]
        for a, b in zip(first.folds, second.folds):
            torch.testing.assert_close(torch.tensor(a.probabilities), torch.tensor(b.probabilities),
                                       rtol=0, atol=1e-6)


def method_contract_tests(plugin: str | ModuleType | Any, method: str, **attributes: Any) -> dict[str, Any]:
    """``{"TestMethodContract": <MethodContract subclass>}`` for ``globals().update(...)``;
    ``attributes`` set ``variant``, ``profile``, ``tiny_overrides`` and ``subjects``."""
    unknown = set(attributes) - {"variant", "profile", "tiny_overrides", "subjects"}
    if unknown:
        raise TypeError(f"unknown contract attributes: {', '.join(sorted(unknown))}")
    cls = type("TestMethodContract", (MethodContract,), {"plugin": plugin, "method": method, **attributes})
    return {"TestMethodContract": cls}


# ------------------------------------------------------------------------------- paper settings
class Within:
    """A value the paper states as a range: ``Within(0.2, 0.5) == 0.3``."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (int, float)) and not isinstance(other, bool) and self.low <= other <= self.high

    def __repr__(self) -> str:
        return f"Within({self.low}, {self.high})"


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """``config["a"]["b"]`` for ``key="a.b"``; a missing key is an error naming it."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"config has no key {key!r} (no {part!r})")
        node = node[part]
    return node


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=0.0)
    return bool(got == want)


Row = tuple[str, Any, str, dict[str, Any]]
DeviationRow = tuple[str, str, Any, str, dict[str, Any]]
#: Config sections no paper speaks to: how a run executes (device, seed, workers) and how its
#: result is reported (intervals, audit), not what it computes.
NOT_PAPER_SECTIONS = ("meta", "run", "evaluation")
#: The header of a method doc's deviations table (case-insensitive).
DEVIATION_HEADER = ("key", "paper", "ours", "why")
_CODE = "(code)"


def _rows(table: Any) -> list[Row]:
    rows = []
    for row in table:
        if len(row) not in (3, 4) or not str(row[2]).strip():
            raise ValueError(f"a row is (config key, value, source or reason[, resolve_config kwargs]): {row!r}")
        rows.append((row[0], row[1], row[2], dict(row[3]) if len(row) == 4 else {}))
    return rows


def _deviation_rows(table: Any) -> list[DeviationRow]:
    rows = []
    for row in table:
        if len(row) not in (4, 5) or not str(row[1]).strip() or not str(row[3]).strip():
            raise ValueError(f"a deviation is (config key, the paper's value as printed, our value, why"
                             f"[, resolve_config kwargs]): {row!r}")
        rows.append((row[0], str(row[1]), row[2], row[3], dict(row[4]) if len(row) == 5 else {}))
    return rows


def _row_id(key: str, where: Mapping[str, Any]) -> str:
    at = ",".join(f"{k}={v}" for k, v in sorted(where.items()))
    return f"{key}[{at}]" if at else key


def deviations_table(text: str) -> list[dict[str, str]]:
    """The rows of every Markdown table in ``text`` headed ``| Key | Paper | Ours | Why |``.

    Each row maps ``key``, ``paper``, ``ours`` and ``why`` to its cells and ``name`` to the first
    backticked word of the key cell (the config key), or ``""`` when it has none.
    """
    rows: list[dict[str, str]] = []
    header = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = tuple(c.lower() for c in cells)
            continue
        if header != DEVIATION_HEADER or set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(DEVIATION_HEADER, cells))
        name = re.search(r"`([^`]+)`", row["key"])
        rows.append({**row, "name": name.group(1) if name else ""})
    return rows


def _renderings(value: Any) -> set[str]:
    """How a doc may write a config value: as YAML or JSON prints it, or ``str``/``%g`` for numbers."""
    out = {yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip(),
           json.dumps(value)}
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out |= {str(value), f"{value:g}"}
    return out


#: What a core trainer adds to the training a paper describes, and the value that leaves it out.
TRAINER_EXTRAS: dict[str, dict[str, Any]] = {
    "supervised": {"label_smoothing": 0.0, "grad_clip": None, "weight_averaging.kind": "none",
                   "fit_check.fallback_lr": [], "perturbation.enabled": False},
    "triplet": {"grad_clip": None, "weight_averaging.kind": "none"},
    "episodic": {"grad_clip": None, "weight_averaging.kind": "none"},
}
#: The settings of those extras that matter only when the extra is on.
_EXTRA_DETAILS = {"weight_averaging.kind": ("weight_averaging.start", "weight_averaging.decay"),
                  "fit_check.fallback_lr": ("fit_check.loss_ratio",),
                  "perturbation.enabled": ("perturbation",)}


def plain_training(section: str, source: str, kind: str = "supervised") -> tuple[list[Row], list[tuple[str, str]]]:
    """Paper rows pinning the extras of the core trainer in ``section`` (label smoothing, gradient
    clipping, weight averaging, learning-rate fallbacks, perturbation training) off, as the
    training a paper describes in ``source`` has none of them; and the open choices for the
    settings of those extras, which matter only when they are on."""
    rows: list[Row] = [(f"{section}.{key}", value, source, {}) for key, value in TRAINER_EXTRAS[kind].items()]
    details = [(f"{section}.{d}", "used only when the extra is switched on (it is off: the paper has none)")
               for key in TRAINER_EXTRAS[kind] for d in _EXTRA_DETAILS.get(key, ())]
    return rows, details


def paper_config_tests(method: Method, paper: Any, deviations: Any, doc: Path | None = None,
                       open_choices: Any = None) -> dict[str, Any]:
    """Tests that the resolved ``paper`` profile of ``method`` holds what its paper states.

    The config is resolved as for a raw clip corpus (``aligned=False``) with the ``dlib`` extra
    taken as installed, the setting the papers describe: ``features.align: auto`` then reads
    ``dlib``.

    Args:
        method: the method instance.
        paper: rows ``(config key, value as the paper prints it, where it says so)``, optionally
            with a fourth item, ``resolve_config`` keyword arguments (``{"dataset": "smic",
            "variant": "p"}``) for a value the paper gives per dataset or variant. ``value`` may be
            :class:`Within` for a stated range. A key whose value is a mapping covers its sub-keys.
        deviations: rows ``(config key, the paper's value as printed, our value, why)``, with the
            same optional fourth item: a key whose value differs from the paper's. Each needs its
            own row in the doc's deviations table (``| Key | Paper | Ours | Why |``, the key in
            backticks, our value in the Ours cell); every row of that table names a deviation
            listed here, or is marked ``(code)`` in its Key cell (a difference in code, not config).
        doc: the method's documentation.
        open_choices: rows ``(config key or section, why)`` for what the paper leaves open. When
            given, every key of the paper profile (but the sections of :data:`NOT_PAPER_SECTIONS`)
            must be a paper setting, a deviation or an open choice: a new key cannot slip in
            uncompared.

    Returns:
        ``{test name: test function}`` for a test module's ``globals().update(...)``.
    """
    paper_rows, deviation_rows = _rows(paper), _deviation_rows(deviations)
    open_rows = [(str(k), str(why)) for k, why in (open_choices or [])]
    if any(not why.strip() for _, why in open_rows):
        raise ValueError("an open choice is (config key or section, why the paper leaves it open)")
    table = deviations_table(Path(doc).read_text()) if doc is not None else None
    doc_name = Path(doc).name if doc is not None else ""

    def resolve(where: Mapping[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setattr(importlib.import_module("mercore.face.landmarks"), "dlib_installed", lambda: True)
        return resolve_config(method, **{"profile": "paper", "aligned": False, **where})

    @pytest.mark.parametrize("key,value,source,where", paper_rows, ids=[_row_id(r[0], r[3]) for r in paper_rows])
    def test_paper_setting(key: str, value: Any, source: str, where: dict[str, Any],
                           monkeypatch: pytest.MonkeyPatch) -> None:
        got = config_value(resolve(where, monkeypatch), key)
        assert _same(got, value), (f"{key} = {got!r} in the paper profile, but the paper says {value!r} ({source}); "
                                   f"a deliberate difference goes in the deviations, with its reason, and the doc")

    @pytest.mark.parametrize("key,paper_value,ours,why,where", deviation_rows,
                             ids=[_row_id(r[0], r[4]) for r in deviation_rows])
    def test_documented_deviation(key: str, paper_value: str, ours: Any, why: str, where: dict[str, Any],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
        got = config_value(resolve(where, monkeypatch), key)
        assert _same(got, ours), f"{key} = {got!r}, the documented deviation says {ours!r} ({why})"
        if table is None:
            return
        rows = [r for r in table if r["name"] == key]
        assert rows, (f"deviation {key} (paper: {paper_value}; ours: {ours!r}) has no row of its own in the "
                      f"deviations table (| Key | Paper | Ours | Why |) of {doc_name}")
        shown = _renderings(ours)
        assert any(r["paper"] and r["why"] and any(s in r["ours"].replace("`", "") for s in shown) for r in rows), (
            f"the {doc_name} row of deviation {key} must give the paper's value, ours ({' or '.join(sorted(shown))}) "
            f"in its Ours cell, and why: {rows}")

    def test_every_doc_deviation_row_is_a_pinned_deviation() -> None:
        assert table is not None
        pinned = {r[0] for r in deviation_rows}
        stray = [r["key"] for r in table if r["name"] not in pinned and _CODE not in r["key"]]
        assert not stray, (f"rows of the deviations table of {doc_name} that no deviation row of the test pins: "
                           f"{stray} (a config key needs a deviation row; a difference in code is marked {_CODE})")
        if deviation_rows:
            assert table, f"{doc_name} has no deviations table (| Key | Paper | Ours | Why |)"

    def test_paper_and_deviation_rows_do_not_overlap() -> None:
        keys = [(k, tuple(sorted(w.items()))) for k, _, _, w in paper_rows]
        keys += [(r[0], tuple(sorted(r[4].items()))) for r in deviation_rows]
        assert len(keys) == len(set(keys)), "a key is listed twice (as a paper setting and as a deviation?)"

    def test_every_key_is_compared_with_the_paper(monkeypatch: pytest.MonkeyPatch) -> None:
        leaves = [k for k in flatten(resolve({}, monkeypatch)) if k.split(".")[0] not in NOT_PAPER_SECTIONS]
        compared = {r[0] for r in paper_rows} | {r[0] for r in deviation_rows}
        covered = compared | {k for k, _ in open_rows}
        left = [k for k in leaves if not any(k == c or k.startswith(c + ".") for c in covered)]
        assert not left, (f"keys of the paper profile neither compared with the paper nor named an open choice: "
                          f"{left}; add each to the paper settings, the deviations or the open choices")
        stale = [k for k, _ in open_rows if not any(x == k or x.startswith(k + ".") for x in leaves)]
        assert not stale, f"open choices that are not keys of the config: {stale}"
        both = [k for k, _ in open_rows if any(k == c or k.startswith(c + ".") for c in compared)]
        assert not both, f"open choices the paper settings or the deviations already compare: {both}"

    tests = {"test_paper_setting": test_paper_setting, "test_documented_deviation": test_documented_deviation,
             "test_every_doc_deviation_row_is_a_pinned_deviation": test_every_doc_deviation_row_is_a_pinned_deviation,
             "test_paper_and_deviation_rows_do_not_overlap": test_paper_and_deviation_rows_do_not_overlap,
             "test_every_key_is_compared_with_the_paper": test_every_key_is_compared_with_the_paper}
    if not deviation_rows:  # nothing to check (pytest would report an empty parameter set as a skip)
        del tests["test_documented_deviation"]
    if table is None:
        del tests["test_every_doc_deviation_row_is_a_pinned_deviation"]
    if open_choices is None:
        del tests["test_every_key_is_compared_with_the_paper"]
    return tests
