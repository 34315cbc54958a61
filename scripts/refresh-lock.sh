#!/usr/bin/env bash
# Regenerates requirements.lock: every third-party package that `mer` and its tests install, at
# one version each, for the CPU build of torch 2.13.0. Run it from the repository root after a
# dependency change in pyproject.toml, then rerun the tests and re-measure the README figures.
# The lock is written by pip-tools (pip-compile) in a throw-away virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q pip-tools
"$tools/bin/pip-compile" -q --extra test --extra dlib --strip-extras --no-emit-find-links --no-emit-index-url \
  --no-emit-trusted-host --allow-unsafe --upgrade-package 'torch==2.13.0' -o requirements.lock pyproject.toml
# The CPU wheel is `2.13.0+cpu`; `==2.13.0` admits it and a CUDA build of the same release alike.
sed -i -E 's/^(torch==[0-9.]+)\+[a-z0-9]+$/\1/' requirements.lock
sed -i -E 's|^#    pip-compile .*|#    scripts/refresh-lock.sh|' requirements.lock
