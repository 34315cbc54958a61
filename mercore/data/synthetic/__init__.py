"""The built-in synthetic micro-expression corpus, written in the CASME II layout.

``generate(out_dir)`` draws one procedural face per subject (head, hair, eyes, brows, nose, mouth,
skin texture, lighting), then renders clips in which class-specific facial actions move small
face regions by 0.5-3 px (at 128x128) with a smooth onset -> apex -> offset profile, under
nuisances shared by every class (rigid head jitter, blinks, illumination flicker, sensor noise,
JPEG). The tree is the one the CASME II adapter reads::

    out_dir/CASME2_RAW_selected/subNN/EPcc_01/imgN.jpg
    out_dir/CASME2-coding-synthetic.xlsx
    out_dir/generator.json                       (parameters, counts, per-clip ground truth)
    out_dir/macro/...                            (same layout, with macro=True)

``SyntheticDataset`` (name ``synthetic``) generates it into the cache on first use and reads it
with :func:`mercore.data.casme2.load_casme2_tree`. See ``docs/synthetic-corpus.md``.

One idea per module: ``plan`` (which clips, what happens in each), ``faces`` (a face per subject),
``render`` (a clip's frames), ``corpus`` (the tree on disk), ``dataset`` (the adapter). OpenCV is
imported inside the functions that use it: loading the plugin registry (``mer plugins``, ``mer
datasets``) imports this package and should not pay for it.
"""
from __future__ import annotations

from .corpus import (DEFAULTS, FPS, FRAMES_FOLDER, GENERATOR_VERSION, MACRO_SHEET_NAME, SHEET_NAME, generate,
                     generator_params, params_hash)
from .dataset import SyntheticDataset
from .faces import Face, make_face
from .plan import CLASS_PROPORTIONS, ClipSpec, class_counts, plan_corpus, seeded_rng
from .render import action_field, profile, render_clip

__all__ = ["CLASS_PROPORTIONS", "DEFAULTS", "FPS", "FRAMES_FOLDER", "GENERATOR_VERSION", "MACRO_SHEET_NAME", "SHEET_NAME",
           "ClipSpec", "Face", "SyntheticDataset", "action_field", "class_counts", "generate", "generator_params",
           "make_face", "params_hash", "plan_corpus", "profile", "render_clip", "seeded_rng"]
