"""The ``synthetic`` dataset: generated into the cache on first use, read as a CASME II tree."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from ...config import ConfigError
from ...labels import CASME2_SDE5, MEGC3
from ..casme2 import TREE_OPTIONS, load_casme2_tree
from ..dataset import Dataset, DatasetError, LoadedDataset, LoadOptions
from .corpus import DEFAULTS, FPS, generate, generator_params, params_hash

log = logging.getLogger(__name__)


def generator_meta(path: Path) -> dict[str, Any] | None:
    """``generator.json`` as the generator writes it (an object whose ``fps`` is a number), or None
    when it is absent or damaged, e.g. truncated by a full disk or an editor."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(meta, dict) and isinstance(meta.get("fps", FPS), (int, float))
    return meta if ok else None


class SyntheticDataset(Dataset):
    """Built-in synthetic micro-expression corpus (generated into the cache on first use)."""

    name = "synthetic"
    description = (f"built-in synthetic micro-expressions, CASME II layout, generated on first use: "
                   f"{DEFAULTS['subjects']} subjects x {DEFAULTS['clips_per_subject']} clips, {DEFAULTS['size']} px "
                   f"(megc3 drops the `others` clips); -D subjects=N -D clips_per_subject=N -D size=N")
    tasks = {"megc3": MEGC3, "sde5": CASME2_SDE5}
    requires_root = False
    face_aligned = True  # faces are generated centred and level: nothing to detect or align

    GENERATOR_KEYS = ("subjects", "clips_per_subject", "size", "seed", "min_frames", "max_frames", "peak_px",
                      "jpeg_quality", "macro", "macro_clips_per_subject")
    options = (*GENERATOR_KEYS, "kind", *TREE_OPTIONS)  # kind=macro: the macro clips; then read as CASME II

    def check_options(self, options: Mapping[str, Any]) -> None:
        """The generator's parameters within their bounds, before anything is generated."""
        self.generator_params(options)

    def generator_params(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The full generator parameters of the ``-D`` options ``options`` (a ConfigError names a bad one)."""
        wants_macro = options.get("kind") == "macro" or bool(options.get("macro"))
        try:
            return generator_params(**{k: options[k] for k in self.GENERATOR_KEYS if k in options and k != "macro"},
                                    macro=wants_macro)
        except ValueError as exc:  # a bad -D value: a usage error, as a bad --set is
            raise ConfigError(f"-D option of the synthetic corpus: {exc}") from None

    def ensure(self, options: LoadOptions) -> Path:
        """The cached corpus for the generator parameters in ``options.extra`` (generated if absent)."""
        params = self.generator_params(dict(options.extra or {}))
        root = Path(options.cache_dir) / "synthetic" / params_hash(params)
        meta = root / "generator.json"
        if generator_meta(meta) is None:  # absent, or damaged: the cached corpus is written again
            if meta.exists():
                log.warning("%s is damaged (not the JSON object the generator writes); generating the synthetic "
                            "corpus in %s again", meta, root)
            generate(root, overwrite=root.exists(), **params)
        return root

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        self.label_set(options.task)
        extra = dict(options.extra or {})
        root = self.ensure(options) if root is None else Path(root)
        if extra.get("kind") == "macro":
            root = root / "macro"
        if not root.is_dir():
            raise DatasetError(f"synthetic corpus folder {root} not found (write one with `mer synth --out DIR`)")
        meta = root / "generator.json"
        fps = FPS
        if meta.exists():
            written = generator_meta(meta)
            if written is None:
                raise DatasetError(f"{meta} is damaged (not the JSON object the generator writes); write the corpus "
                                   "again with `mer synth --out DIR --overwrite`")
            fps = float(written.get("fps", FPS))
        return load_casme2_tree(root, options, dataset_name="synthetic", excluded=(), fps=fps, tasks=self.tasks)
