"""Where the project's shared data (annotations, the SMIC flow release, papers) are found.

One setting: ``$MER_SHARED``; without it, ``../shared`` beside the repository this package was
installed from (an editable or source install). Tests and benchmarks that need the data skip
or stop with that path in the message when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """``$MER_SHARED``, else the ``shared`` folder beside the repository."""
    configured = os.environ.get("MER_SHARED")
    return Path(configured).expanduser() if configured else Path(__file__).resolve().parents[2] / "shared"
