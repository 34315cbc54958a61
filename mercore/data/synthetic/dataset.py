"""The ``synthetic`` dataset: generated into the cache on first use, read as a CASME II tree."""
from __future__ import annotations

import json
from pathlib import Path

from ...config import ConfigError
from ...labels import CASME2_SDE5, MEGC3
from ..casme2 import load_casme2_tree
from ..dataset import Dataset, DatasetError, LoadedDataset, LoadOptions
from .corpus import FPS, generate, generator_params, params_hash


class SyntheticDataset(Dataset):
    """Built-in synthetic micro-expression corpus (generated into the cache on first use)."""

    name = "synthetic"
    description = "built-in synthetic micro-expressions, CASME II layout; 16 subjects x 8 clips, 128 px"
    tasks = {"megc3": MEGC3, "sde5": CASME2_SDE5}
    requires_root = False
    face_aligned = True  # faces are generated centred and level: nothing to detect or align

    GENERATOR_KEYS = ("subjects", "clips_per_subject", "size", "seed", "min_frames", "max_frames", "peak_px",
                      "jpeg_quality", "macro", "macro_clips_per_subject")

    def ensure(self, options: LoadOptions) -> Path:
        """The cached corpus for the generator parameters in ``options.extra`` (generated if absent)."""
        extra = dict(options.extra or {})
        wants_macro = extra.get("kind") == "macro" or bool(extra.get("macro"))
        try:
            params = generator_params(**{k: extra[k] for k in self.GENERATOR_KEYS if k in extra and k != "macro"},
                                      macro=wants_macro)
        except ValueError as exc:  # a bad -D value: a usage error, as a bad --set is
            raise ConfigError(f"-D option of the synthetic corpus: {exc}") from None
        root = Path(options.cache_dir) / "synthetic" / params_hash(params)
        if not (root / "generator.json").is_file():
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
        if meta.is_file():
            fps = float(json.loads(meta.read_text()).get("fps", FPS))
        return load_casme2_tree(root, options, dataset_name="synthetic", excluded=(), fps=fps, tasks=self.tasks)
