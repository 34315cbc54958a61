"""`import mercore`, `mer --help`, `mer plugins` and `mer datasets` load neither torch nor mlflow
(nor OpenCV): each is run in a fresh interpreter, whose ``sys.modules`` no other test has filled.
On failure the import chain that pulled the module in is printed."""
from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "mlflow", "cv2")

# Runs `mer ARGS` as the console script does (mercore.cli:main), recording the stack of the first
# import of each heavy module; exits 1 listing those chains if any was imported.
PROBE = r"""
import sys
import traceback

heavy, chains = set(sys.argv[1].split(",")), {}


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in heavy and name not in chains:
            chains[name] = [f"  {f.filename}:{f.lineno}  {f.line}" for f in traceback.extract_stack()[:-1]
                            if "importlib._bootstrap" not in f.filename]
        return None


sys.meta_path.insert(0, Watch())
import mercore  # noqa: E402

args = sys.argv[2:]
if args:
    from mercore.cli import main

    sys.argv = ["mer", *args]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
loaded = sorted(m for m in heavy if m in sys.modules)
for name in loaded:
    print(f"{name} imported by:", *chains.get(name, ["  (not seen by the probe)"]), sep="\n", file=sys.stderr)
sys.exit(1 if loaded else 0)
"""


@pytest.mark.parametrize("args", [(), ("--help",), ("plugins",), ("datasets",)], ids=lambda a: " ".join(a) or "import")
def test_stays_light(args):
    out = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), *args], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-6000:]
    assert "BROKEN" not in out.stdout and "failed to load" not in out.stderr, out.stdout + out.stderr
