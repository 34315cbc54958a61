"""Plugin discovery: entry points, broken plugins, name clashes, environment switches."""
from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from mercore import hookimpl
from mercore.plugins import PluginError, UnknownNameError, load_registry


def _write_dist(site: Path, dist: str, module: str, code: str, ep_name: str) -> None:
    """A pip-less installed distribution: a module plus ``*.dist-info`` with an entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[mer]\n{ep_name} = {module}\n")


GOOD = """
    from torch import nn
    import mercore
    from mercore import hookimpl, FeatureRequest, SupervisedTrainer

    class MyNet(mercore.Method):
        name = "mynet"
        def default_config(self): return {"train": {"epochs": 1}}
        def features(self, config): return {}
        def build_model(self, config, num_classes): return nn.Identity()
        def stages(self, config): return [SupervisedTrainer.from_config(config["train"])]

    @hookimpl
    def mer_register_methods(register):
        register(MyNet)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m.startswith("mer_test_")]:
        del sys.modules[name]


def test_entry_point_plugin_is_discovered_with_version(site):
    _write_dist(site, "mer-mynet", "mer_test_good", GOOD, "mynet")
    registry = load_registry()
    assert "mynet" in registry.methods
    assert registry.methods["mynet"].plugin == "mynet"
    assert registry.plugins["mynet"].version == "0.3.1"
    assert registry.method("mynet").name == "mynet"
    assert "synthetic" not in registry.methods  # datasets live in their own table


def test_broken_plugin_is_reported_and_others_still_load(site):
    _write_dist(site, "mer-mynet", "mer_test_good", GOOD, "mynet")
    _write_dist(site, "mer-broken", "mer_test_broken", "import not_a_module_anywhere\n", "broken")
    registry = load_registry()
    assert "mynet" in registry.methods
    assert "ModuleNotFoundError" in registry.plugins["broken"].error
    with pytest.raises(UnknownNameError, match="plugins that failed to load: broken"):
        registry.method("broken")


def test_plugin_whose_hook_raises_is_rolled_back(site):
    code = """
        from mercore import hookimpl
        @hookimpl
        def mer_register_methods(register):
            raise RuntimeError("boom in hook")
    """
    _write_dist(site, "mer-raises", "mer_test_raises", code, "raises")
    registry = load_registry()
    assert "boom in hook" in registry.plugins["raises"].error
    with pytest.raises(RuntimeError, match="boom in hook"):
        load_registry(strict=True)


def test_two_plugins_claiming_one_method_name_is_an_error_naming_both(site):
    _write_dist(site, "mer-mynet", "mer_test_good", GOOD, "mynet")
    _write_dist(site, "mer-mynet2", "mer_test_good2", GOOD, "mynet2")
    registry = load_registry()
    errors = {n: p.error for n, p in registry.plugins.items() if p.error}
    assert len(errors) == 1
    (message,) = errors.values()
    assert "'mynet' is registered by both plugin 'mynet' and plugin 'mynet2'" in message


def test_unknown_method_lists_valid_choices(toy_registry):
    with pytest.raises(UnknownNameError, match=r"unknown method 'nope'; choose one of: .*toy"):
        toy_registry.method("nope")


def test_env_switches_select_and_disable_plugins(site, monkeypatch):
    _write_dist(site, "mer-mynet", "mer_test_good", GOOD, "mynet")
    monkeypatch.setenv("MER_DISABLE_PLUGINS", "mynet")
    assert "mynet" not in load_registry().methods
    monkeypatch.delenv("MER_DISABLE_PLUGINS")
    monkeypatch.setenv("MER_PLUGINS", "other")
    assert "mynet" not in load_registry().methods


def test_registration_without_name_is_rejected():
    module = types.ModuleType("nameless")

    @hookimpl
    def mer_register_methods(register):
        register(object())

    module.mer_register_methods = mer_register_methods
    registry = load_registry(only=[], extra_plugins=[("nameless", module)])
    assert "without a string `name`" in registry.plugins["nameless"].error
    with pytest.raises(PluginError):
        load_registry(only=[], extra_plugins=[("nameless", module)], strict=True)


def test_a_plugin_that_exits_at_import_is_reported_not_fatal(site):
    from click.testing import CliRunner

    from mercore.cli import cli

    _write_dist(site, "mer-mynet", "mer_test_good", GOOD, "mynet")
    _write_dist(site, "mer-quits", "mer_test_quits", "import sys\nsys.exit(3)\n", "quits")
    registry = load_registry()
    assert "mynet" in registry.methods
    assert registry.plugins["quits"].error == "SystemExit(3): the plugin called sys.exit while loading"
    out = CliRunner().invoke(cli, ["plugins"])
    assert out.exit_code == 0 and "quits" in out.output and "BROKEN" in out.output
    assert "plugin 'quits' failed to load: SystemExit(3)" in out.output
    out = CliRunner().invoke(cli, ["datasets"])
    assert out.exit_code == 0 and "synthetic" in out.output
    hook = """
        import sys
        from mercore import hookimpl
        @hookimpl
        def mer_register_methods(register):
            sys.exit("no")
    """
    _write_dist(site, "mer-quits-late", "mer_test_quits_late", hook, "quitslate")
    assert load_registry().plugins["quitslate"].error.startswith("SystemExit('no')")


def test_a_plugin_taking_another_plugins_name_is_the_one_reported(site):
    """`aaa` loads first and registers `mynet`; the name stays with the plugin called mynet."""
    _write_dist(site, "mer-aaa", "mer_test_impostor", GOOD, "aaa")
    _write_dist(site, "mer-mynet", "mer_test_good", GOOD, "mynet")
    registry = load_registry()
    assert registry.methods["mynet"].plugin == "mynet"
    assert registry.plugins["mynet"].error is None
    assert registry.plugins["aaa"].error == ("method 'mynet' is registered by both plugin 'aaa' and plugin 'mynet'; "
                                             "it belongs to 'mynet', whose entry point has its name")
    assert registry.manager.get_plugin("aaa") is None
    from mercore.catalogue import installed_status

    status = installed_status()
    assert status["mynet"]["error"] is None and status["mynet"]["distribution"] == "mer-mynet"
    assert status["aaa"]["error"].startswith("method 'mynet' is registered by both")


BREAKS_CONTRACT = """
    import mercore
    from mercore import hookimpl

    class HalfNet(mercore.Method):
        name = "halfnet"
        def default_config(self): return {}
        def features(self, config): return {}

    @hookimpl
    def mer_register_methods(register):
        register(HalfNet)
"""

NOT_A_DATASET = """
    from mercore import hookimpl

    class Corpus:
        name = "corpus"
        def load(self, root, options): return None

    @hookimpl
    def mer_register_datasets(register):
        register(Corpus)
"""


def test_a_plugin_breaking_a_contract_is_refused_at_registration_naming_class_and_what_is_missing(site):
    from click.testing import CliRunner

    from mercore.cli import cli

    _write_dist(site, "mer-mynet", "mer_test_good", GOOD, "mynet")
    _write_dist(site, "mer-halfnet", "mer_test_half", BREAKS_CONTRACT, "halfnet")
    _write_dist(site, "mer-corpus", "mer_test_corpus", NOT_A_DATASET, "corpus")
    registry = load_registry()
    assert "mynet" in registry.methods and "halfnet" not in registry.methods and "corpus" not in registry.datasets
    assert registry.plugins["halfnet"].error == ("PluginError: plugin 'halfnet': method mer_test_half.HalfNet does not "
                                                 "implement build_model (abstract in mercore.Method)")
    assert registry.plugins["corpus"].error == ("PluginError: plugin 'corpus': dataset mer_test_corpus.Corpus is not a "
                                                "subclass of mercore.Dataset")
    out = CliRunner().invoke(cli, ["plugins"])
    assert out.exit_code == 0 and "BROKEN" in out.output and "does not implement build_model" in out.output
    out = CliRunner().invoke(cli, ["run", "--plugin", "halfnet"])
    assert out.exit_code != 0 and "halfnet" in out.output and "failed to load" in out.output
    with pytest.raises(PluginError, match="does not implement build_model"):
        load_registry(only=["halfnet"], strict=True)



def _toy_method(name: str) -> type:
    from torch import nn

    import mercore

    return type(name, (mercore.Method,), {
        "name": name, "default_config": lambda self: {"train": {"epochs": 1}}, "features": lambda self, c: {},
        "build_model": lambda self, c, n: nn.Identity(), "stages": lambda self, c: []})


def test_registration_goes_through_pluggy_so_hook_markers_mean_what_they_say():
    """``specname`` implementations count; a function that merely has a hook's name and no
    ``@hookimpl`` is not a hook (pluggy's rules, not a lookup by attribute name)."""

    class Renamed:
        @hookimpl(specname="mer_register_methods")
        def add_my_methods(self, register):
            register(_toy_method("renamed"))

    class Unmarked:
        def mer_register_methods(self, register):  # no @hookimpl
            register(_toy_method("unmarked"))

    registry = load_registry(only=[], extra_plugins=[("renamed", Renamed()), ("unmarked", Unmarked())])
    assert registry.methods["renamed"].plugin == "renamed"
    assert "unmarked" not in registry.methods
