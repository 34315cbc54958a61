"""The raw-frame path on real faces: CASME II subject sub01 (nine clips, onset to offset).

The frames are ``<shared>/data/casme2-raw-sub01`` (``$MER_SHARED``, else ``../shared``; see
:mod:`mercore.shared`), read with the CASME II adapter in the corpus's own layout, with a coding
sheet written from ``<shared>/data/annotations/casme2_5class_frames.csv``. Checked: dlib face
detection and the onset alignment of every frame used, onset -> apex flow and strain against two
neutral frames, magnification, D&C-RoIs apex spotting against the coded apex (errors in
docs/methods/dfrnet.md), every clip method's feature stage, and ``mer predict`` with a model
trained on the synthetic corpus. Skipped where the folder is absent or the ``dlib`` extra is not installed.
"""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mercore.data.casme2 import Casme2Dataset
from mercore.data.dataset import LoadOptions
from mercore.data.frames import read_image
from mercore.face import dlib_installed, landmarks
from mercore.face.align import onset_transform
from mercore.face.landmarks import INSTALL_HINT, LEFT_EYE, RIGHT_EYE
from mercore.sample import Sample
from mercore.shared import shared_dir
from mercore.testing.layouts import CASME2_CLASSES, CASME2_HEADER

DATA = shared_dir() / "data" / "casme2-raw-sub01"
TABLE = shared_dir() / "data" / "annotations" / "casme2_5class_frames.csv"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATA / "CASME2_RAW_selected").is_dir() or not TABLE.is_file(),
                       reason=f"real CASME II frames {DATA} or {TABLE} absent (set MER_SHARED)"),
    pytest.mark.skipif(not dlib_installed(), reason=f"the dlib extra is not installed: {INSTALL_HINT}"),
]

SIZE = 128  # side of the aligned crop checked here (the DFR-Net quick profile computes flow at 128)
MAX_TILT_DEG = 3.0
CENTRE_TOLERANCE = 0.05  # of the crop side
#: MoExt's crop (brow to chin, square, centred between the inner eye corners) is narrower than the
#: cheeks: the outline points 1-3 and 14-17 (1-based) may lie this far (of the side) outside it.
OUTLINE_OVERHANG = 0.05
INNER_POINTS = slice(17, 68)  # brows, eyes, nose, mouth: inside the crop itself
#: Spotted apex within this many frames of the coded one: 100 ms at 200 fps, fixed before the first
#: run (neither DFR-Net nor its D&C-RoIs source states a tolerance).
SPOT_TOLERANCE = 20
#: The clips that miss it, as docs/methods/dfrnet.md reports ("Apex spotting on real CASME II clips").
SPOT_MISSES = {"EP02_01f", "EP19_03f", "EP19_06f"}
#: MEGC2019 composite labels of the sub01 clips it keeps (the shared README, megc2019_combined_3class_gt.csv).
MEGC3_LABELS = {"EP02_01f": "positive", "EP19_05f": "negative", "EP19_06f": "negative"}
PREDICT_CLIP = "EP02_01f"

torch.set_num_threads(1)


def coded_rows() -> list[list[str]]:
    """The annotation rows of the clips present in the frame folder."""
    with open(TABLE, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    return [r for r in rows if (DATA / "CASME2_RAW_selected" / r[0] / r[1]).is_dir()]


@pytest.fixture(scope="module")
def coding(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CASME II coding sheet (the sheet's header and emotion words) of the annotation table's sub01
    rows, written to a temporary folder: ``../shared`` is never written."""
    sheet = tmp_path_factory.mktemp("casme2-coding") / "CASME2-coding-sub01.csv"
    with open(sheet, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CASME2_HEADER)
        for subject, clip, onset, apex, offset, cls in coded_rows():
            writer.writerow([subject[3:], clip, onset, apex, offset, "", CASME2_CLASSES[cls]])
    return sheet


@pytest.fixture(scope="module")
def clips(coding: Path) -> dict[str, Sample]:
    """All nine clips (5-class task: the 3-class one drops the ``others`` clips)."""
    data = Casme2Dataset().load(DATA, LoadOptions(task="sde5", extra={"coding": str(coding)}))
    return {s.clip: s for s in data.samples}


def crop_points(sample: Sample, index: int) -> np.ndarray:
    """dlib's 68 landmarks of frame ``index`` in the clip's aligned crop (the onset's transform,
    which every feature applies to every frame of the clip)."""
    matrix = onset_transform(sample, SIZE)
    return landmarks(read_image(sample.frames[index])) @ matrix[:, :2].T + matrix[:, 2]


def test_the_adapter_reads_the_real_layout_and_coding(clips: dict[str, Sample], coding: Path) -> None:
    rows = coded_rows()
    assert len(rows) == 9 and sorted(clips) == sorted(r[1] for r in rows)
    for subject, clip, onset, apex, offset, _ in rows:
        s = clips[clip]
        assert s.subject == subject and s.fps == 200.0
        assert [s.frame_numbers[i] for i in (s.onset, s.apex, s.offset)] == [int(onset), int(apex), int(offset)]
        assert len(s.frames) == int(offset) - int(onset) + 1  # every frame from onset to offset
    megc3 = Casme2Dataset().load(DATA, LoadOptions(task="megc3", extra={"coding": str(coding)}))
    assert {s.clip: megc3.labels.classes[s.label("megc3")] for s in megc3.samples} == MEGC3_LABELS


def test_faces_are_found_and_the_crops_are_centred_level_and_whole(clips: dict[str, Sample]) -> None:
    """Onset, the frame after it and apex: the frames the flow and strain below use."""
    for s in clips.values():
        for index in (s.onset, s.onset + 1, s.apex):
            pts = crop_points(s, index)
            where = f"{s.clip} frame {s.frame_numbers[index]}"
            left, right = pts[list(LEFT_EYE)].mean(0), pts[list(RIGHT_EYE)].mean(0)
            tilt = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
            assert abs(tilt) <= MAX_TILT_DEG, f"{where}: eyes tilted {tilt:.1f} deg"
            centre = pts.mean(0)
            assert np.all(np.abs(centre - SIZE / 2) <= CENTRE_TOLERANCE * SIZE), f"{where}: face centre {centre}"
            inner = pts[INNER_POINTS]
            assert inner.min() >= 0 and inner.max() < SIZE, f"{where}: inner landmarks leave the crop"
            margin = OUTLINE_OVERHANG * SIZE
            assert pts.min() >= -margin and pts.max() < SIZE + margin, \
                f"{where}: landmarks span {pts.min(0)}..{pts.max(0)} in a {SIZE} px crop"


def test_onset_to_apex_flow_and_strain_exceed_two_neutral_frames_inside_the_face(clips: dict[str, Sample]) -> None:
    """Mean |flow| and strain over the onset's landmark hull: onset -> apex against onset -> onset+1.
    Measured (2026-12-07): flow 1.4-9.1 times, strain only 1.02-1.34 times the neutral pair's (the
    mean over the whole face dilutes a local action; much of the flow is head motion)."""
    from mercore.features.extractors import OpticalFlow
    from mercore.features.flow import optical_strain

    flow = OpticalFlow(size=SIZE, align="dlib")
    report = {}
    for s in clips.values():
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.rint(crop_points(s, s.onset)).astype(np.int32)), 1)
        face = mask.astype(bool)
        apex = flow.extract(s, None)
        neutral = flow.extract(dataclasses.replace(s, apex=s.onset + 1), None)
        motion = [float(np.hypot(*f)[face].mean()) for f in (apex, neutral)]
        strain = [float(optical_strain(f)[0][face].mean()) for f in (apex, neutral)]
        report[s.clip] = (round(motion[0] / motion[1], 2), round(strain[0] / strain[1], 2))
    assert all(m > 1 and e > 1 for m, e in report.values()), f"(flow, strain) apex / neutral: {report}"


def test_magnification_scales_the_real_onset_to_apex_motion(clips: dict[str, Sample], tmp_path: Path) -> None:
    """Flow from the onset to the magnified apex (MPFNet's AFE input) against the plain flow, mean
    |flow| over the crop's centre: about ``1 + phi`` times. Measured 1.6-2.0 (phi 1) and 3.0-3.95
    (phi 3) on these clips (2026-12-07): the bounds leave a quarter either side of those."""
    from mercore.plugins import load_registry

    store = load_registry().feature_store(tmp_path)
    centre = (slice(SIZE // 6, SIZE - SIZE // 6),) * 2
    report = {}
    for s in clips.values():
        flows = [store.get("optical_flow", s, size=SIZE, align="dlib", magnification=phi) for phi in (0.0, 1.0, 3.0)]
        motion = [float(np.hypot(*f)[centre].mean()) for f in flows]
        report[s.clip] = (round(motion[1] / motion[0], 2), round(motion[2] / motion[0], 2))
    assert all(1.2 <= once <= 2.5 and 2.2 <= thrice <= 5 and thrice > once for once, thrice in report.values()), \
        f"magnified / plain motion at phi 1 and 3: {report}"


def test_dc_rois_spotting_lands_near_the_coded_apex(clips: dict[str, Sample]) -> None:
    """The apex spotted on onset..offset (raw frames, dlib regions: as the SMIC adapter spots) against
    the coded one. Prints the errors and those of the middle frame (SMIC's ``apex: middle``) for
    docs/methods/dfrnet.md (``-s``)."""
    from mercore.spotting import spot_apex

    errors = {c: spot_apex(s.frames[s.onset:s.offset + 1], landmark_backend="dlib") - (s.apex - s.onset)
              for c, s in clips.items()}
    middle = {c: (s.offset - s.onset) // 2 - (s.apex - s.onset) for c, s in clips.items()}
    print(f"\nspotted - coded apex (frames): {errors}\nmiddle frame - coded apex: {middle}")
    misses = {c for c, e in errors.items() if abs(e) > SPOT_TOLERANCE}
    assert misses == SPOT_MISSES, f"spotted - coded apex (frames): {errors}; update docs/methods/dfrnet.md"


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_every_clip_method_computes_its_features_on_real_clips(clips: dict[str, Sample], tmp_path: Path,
                                                               profile: str) -> None:
    """The feature requests each method makes for `mer run --dataset casme2` (on a CPU: the quick
    profile, on all nine clips; the paper's, which a GPU run gets, on the shortest clip), built
    through the feature store: finite, not constant, and from dlib-aligned faces."""
    from mercore.features.store import build_inputs
    from mercore.plugins import load_registry
    from mercore.runner import run_config
    from mercore.spec import RunSpec

    registry = load_registry()
    store = registry.feature_store(tmp_path)
    samples = list(clips.values()) if profile == "quick" else [clips["EP04_03"]]
    methods = [n for n in registry.list("methods") if "clips" in registry.method(n).inputs]
    assert len(methods) >= 7, methods
    for name in methods:
        method = registry.method(name)
        config = run_config(RunSpec(method, dataset="casme2", profile=None if profile == "quick" else profile),
                            registry, "cpu")
        assert config["meta"]["profile"] == profile, name
        requests = method.features(config)
        assert {r.params["align"] for r in requests.values() if "align" in r.params} == {"dlib"}, name
        for stream, x in build_inputs(store, requests, samples, progress=False).items():
            where = f"{name} stream {stream}"
            assert x.shape[0] == len(samples) and x.dtype == torch.float32 and torch.isfinite(x).all(), where
            assert all(float(clip.std()) > 0 for clip in x), f"{where}: a constant input"


def test_mer_predict_classifies_a_real_clip(clips: dict[str, Sample], tmp_path_factory: pytest.TempPathFactory) -> None:
    """STSTNet trained (quick profile, few epochs) on 3 synthetic subjects; `mer predict --align dlib`
    on a real clip with its coded apex."""
    from click.testing import CliRunner

    from mercore.cli import cli
    from mercore.plugins import load_registry
    from mercore.runner import run
    from mercore.spec import ExecutionOptions, RunSpec

    registry = load_registry()
    cache = tmp_path_factory.getbasetemp() / "mer-contract-cache"  # the synthetic corpus other tests share
    result = run(RunSpec(registry.method("ststnet"), dataset="synthetic",
                         dataset_options={"subjects": 3, "clips_per_subject": 4, "size": 64},
                         overrides={"train.epochs": 20, "run.device": "cpu"}, subjects=["sub01", "sub02", "sub03"]),
                 ExecutionOptions(cache_dir=cache, progress=False, tracking=False), registry=registry)
    s = clips[PREDICT_CLIP]
    clip = Path(s.frames[0]).parent
    out = CliRunner().invoke(cli, ["predict", "--plugin", "ststnet", "--checkpoint", result.folds[0].checkpoint,
                                   str(clip), "--align", "dlib", "--apex", str(s.apex)])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0] == f"{clip}: {len(s.frames)} frames, onset 0, apex {s.apex} (given)"
    probabilities = {line.split()[0]: float(line.split()[1]) for line in lines[1:-1]}
    assert set(probabilities) == set(result.class_names) and sum(probabilities.values()) == pytest.approx(1, abs=1e-3)
    assert lines[-1] == f"prediction: {max(probabilities, key=probabilities.get)}"
