"""The shipped plugins use only mercore's public API: ``mercore`` itself and its ``nn`` building
blocks (``mercore.testing`` in their tests). A plugin that reaches into the core's modules breaks
whenever they are reorganised, and a third party copying it would too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
PUBLIC = ("mercore", "mercore.nn")


def mercore_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [n for n in names if n == "mercore" or n.startswith("mercore.")]


SOURCES = sorted(p for p in PLUGINS.glob("*/mer_*/*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PLUGINS)))
def test_plugin_code_imports_only_the_public_api(path):
    private = [m for m in mercore_imports(path) if not (m in PUBLIC or m.startswith("mercore.nn."))]
    assert not private, f"{path.relative_to(PLUGINS)} imports {private}; use what `mercore` exports"


def test_every_plugin_is_scanned():
    assert {p.parts[-3] for p in SOURCES} >= {"mer-ahmsanet", "mer-dfrnet", "mer-htnet", "mer-moext", "mer-mpfnet",
                                              "mer-rrmfnet", "mer-ststnet"}
