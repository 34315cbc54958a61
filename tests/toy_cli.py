"""The `mer` command with conftest's toy method and dataset registered, for tests that need a
real process of their own (signals, concurrent first runs): ``python tests/toy_cli.py run ...``."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import mercore.runner  # noqa: E402
from conftest import make_toy_plugin  # noqa: E402
from mercore.cli import cli  # noqa: E402
from mercore.plugins import load_registry  # noqa: E402

if __name__ == "__main__":
    registry = load_registry(only=[], extra_plugins=[("toy", make_toy_plugin())])
    mercore.runner.load_method = lambda _registry, name: (registry, registry.method(name))
    cli()
