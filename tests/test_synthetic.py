"""The synthetic micro-expression corpus: determinism, layout, timing, classes, motion, subjects."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mercore.data import synthetic
from mercore.data.casme2 import read_coding_table
from mercore.data.dataset import LoadOptions
from mercore.data.frames import read_image
from mercore.data.synthetic import (CLASS_PROPORTIONS, SyntheticDataset, action_field, class_counts, generate,
                                    make_face, plan_corpus, profile)

TINY = dict(subjects=4, clips_per_subject=5, size=64, seed=3, min_frames=20, max_frames=28)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("syn") / "corpus", **TINY)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic(tiny, tmp_path):
    again = generate(tmp_path / "again", **TINY)
    a, b = _files(tiny), _files(again)
    assert a.keys() == b.keys() and len(a) > 100
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
    one = dict(TINY, subjects=1, clips_per_subject=1)
    c = _files(generate(tmp_path / "seed3", **one))
    d = _files(generate(tmp_path / "seed4", **{**one, "seed": 4}))
    assert c["CASME2-coding-synthetic.xlsx"] != d["CASME2-coding-synthetic.xlsx"] or c.keys() != d.keys()


def test_layout_and_sheet(tiny):
    assert (tiny / "CASME2_RAW_selected").is_dir()
    rows = read_coding_table(tiny / "CASME2-coding-synthetic.xlsx")
    assert len(rows) == 20
    assert {r["subject"] for r in rows} == {"01", "02", "03", "04"}
    meta = json.loads((tiny / "generator.json").read_text())
    assert meta["params"]["subjects"] == 4 and meta["params"]["size"] == 64 and len(meta["clips"]) == 20
    assert not [p for p in tiny.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_read_by_casme2_adapter(tiny):
    ds = SyntheticDataset().load(tiny, LoadOptions(task="sde5"))
    assert len(ds.samples) == 20 and ds.skipped == []
    assert ds.subjects == [f"synthetic/sub0{i}" for i in range(1, 5)]
    meta = {(c["subject"], c["clip"]): c for c in json.loads((tiny / "generator.json").read_text())["clips"]}
    for s in ds.samples:
        assert s.dataset == "synthetic" and s.fps == 200
        assert TINY["min_frames"] <= len(s.frames) <= TINY["max_frames"]
        assert 0 <= s.onset < s.apex < s.offset < len(s.frames)
        spec = meta[s.subject, s.clip]
        assert (s.onset, s.apex, s.offset) == (spec["onset"], spec["apex"], spec["offset"])
        assert s.emotion == spec["emotion"]
        assert read_image(s.frames[s.apex]).shape == (64, 64, 3)
    megc3 = SyntheticDataset().load(tiny, LoadOptions(task="megc3"))
    expected = {"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2}
    assert len(megc3.samples) == sum(c["emotion"] != "others" for c in meta.values())
    assert all(s.label("megc3") == expected[s.emotion] for s in megc3.samples)


def test_class_counts_and_imbalance():
    assert class_counts(128) == {"happiness": 17, "surprise": 13, "disgust": 33, "repression": 14, "others": 51}
    specs = plan_corpus()
    counts = Counter(s.emotion for s in specs)
    assert len(specs) == 256 and len({s.subject for s in specs}) == 16
    for emotion, share in CLASS_PROPORTIONS.items():
        assert abs(counts[emotion] / 256 - share) < 0.01
    three = [{"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2}[s.emotion]
             for s in specs if s.emotion != "others"]
    n = np.bincount(three)
    assert 0.55 <= n[0] / n.sum() <= 0.65
    # UF1 of always predicting the majority class: F1 of that class / 3
    p = n[0] / n.sum()
    assert 0.25 <= (2 * p / (1 + p)) / 3 <= 0.3
    # class is not a function of the subject
    per_subject = {sub: {s.emotion for s in specs if s.subject == sub} for sub in {s.subject for s in specs}}
    assert all(len(v) >= 2 for v in per_subject.values())


def test_clip_timing_default():
    for s in plan_corpus():
        assert 20 <= s.n_frames <= 60
        assert 0 <= s.onset < s.apex < s.offset < s.n_frames
        a = profile(s)
        assert a[s.apex] == pytest.approx(1.0) and a[: s.onset + 1].max() == 0 and a[s.offset:].max() < 1e-9
        assert np.all(np.diff(a[s.onset:s.apex + 1]) >= 0) and np.all(np.diff(a[s.apex:s.offset + 1]) <= 0)


def test_peak_displacement_from_ground_truth():
    faces = {}
    peaks = []
    for s in plan_corpus():
        face = faces.get(s.subject) or faces.setdefault(s.subject, make_face(int(s.subject[3:]) - 1))
        fld = action_field(face, s)
        mag = np.sqrt((fld ** 2).sum(-1)) * profile(s).max()
        peaks.append(mag.max())
        assert 0.5 - 1e-4 <= mag.max() <= 3.0 + 1e-4
        # confined to facial-action regions: nothing moves at the top/side borders or on most of the image
        # (the bottom border is the neck, which a jaw drop may drag a little)
        border = np.concatenate([mag[:4].ravel(), mag[:, :4].ravel(), mag[:, -4:].ravel()])
        assert border.max() < 0.02 * mag.max()
        assert (mag > 0.1 * mag.max()).mean() < 0.25
    assert np.ptp(peaks) > 1.0  # amplitude varies across clips


def test_macro_plan_amplitudes():
    specs = plan_corpus(subjects=2, clips_per_subject=3, kind="macro")
    face = make_face(0)
    for s in specs:
        assert 40 <= s.n_frames <= 90 and s.kind == "macro" and s.clip.startswith("MA")
        if s.subject == "sub01":
            assert 6 - 1e-4 <= np.sqrt((action_field(face, s) ** 2).sum(-1)).max() <= 20 + 1e-4


def test_distinct_subjects(tiny):
    faces = [make_face(i, 64, TINY["seed"]) for i in range(4)]
    between = min(np.abs(faces[i].neutral - faces[j].neutral).mean() for i in range(4) for j in range(i + 1, 4))
    clip = sorted((tiny / "CASME2_RAW_selected" / "sub01").iterdir())[0]
    frames = sorted(clip.glob("*.jpg"), key=lambda p: int(p.stem[3:]))
    within = np.abs(read_image(frames[0]) - read_image(frames[1])).mean()
    assert between > 5 * within, (between, within)
    # and the written frames are that subject's face, not another one's
    f0 = read_image(frames[0])
    dists = [np.abs(f0 - f.neutral).mean() for f in faces]
    assert int(np.argmin(dists)) == 0


def test_refuses_non_empty_and_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "c"
    out.mkdir()
    (out / "x").write_text("keep")
    with pytest.raises(FileExistsError):
        generate(out, subjects=1, clips_per_subject=1, size=64)
    assert (out / "x").read_text() == "keep"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic.corpus, "render_clip", boom)  # the corpus writer renders each clip
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "d", subjects=1, clips_per_subject=1, size=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_dataset_generates_into_cache_once(tmp_path):
    opts = LoadOptions(task="megc3", cache_dir=tmp_path / "cache",
                       extra={"subjects": 2, "clips_per_subject": 3, "size": 48, "max_frames": 22})
    ds = SyntheticDataset()
    root = ds.ensure(opts)
    assert root.parent == tmp_path / "cache" / "synthetic" and (root / "generator.json").is_file()
    stamp = (root / "generator.json").stat().st_mtime_ns
    first = ds.load(None, opts)
    assert ds.ensure(opts) == root and (root / "generator.json").stat().st_mtime_ns == stamp
    assert all(s.dataset == "synthetic" for s in first.samples)
    sde5 = ds.load(None, LoadOptions(task="sde5", cache_dir=opts.cache_dir, extra=opts.extra))
    assert len(sde5.samples) == 6


def test_mer_datasets_describes_the_corpus_a_run_generates():
    """The listing once said 8 clips per subject while runs generated 16: it must show the generator's
    defaults, which a run without -D options uses."""
    from click.testing import CliRunner

    from mercore.cli import cli
    from mercore.data.synthetic.corpus import generator_params

    params = generator_params()
    out = CliRunner().invoke(cli, ["datasets"])
    line = next(line for line in out.output.splitlines() if line.startswith("synthetic"))
    assert f"{params['subjects']} subjects x {params['clips_per_subject']} clips, {params['size']} px" in line


def test_macro_tree(tmp_path):
    root = generate(tmp_path / "m", subjects=2, clips_per_subject=2, size=48, macro=True, macro_clips_per_subject=1,
                    max_frames=22)
    assert (root / "macro" / "CASME2-coding-synthetic-macro.xlsx").is_file()
    ds = SyntheticDataset().load(root, LoadOptions(task="sde5", extra={"kind": "macro"}))
    assert len(ds.samples) == 2 and all(40 <= len(s.frames) <= 90 for s in ds.samples)
    assert len(SyntheticDataset().load(root, LoadOptions(task="sde5")).samples) == 4


def test_unknown_parameter(tmp_path):
    with pytest.raises(TypeError, match="unknown generator parameter"):
        generate(tmp_path / "x", subjects=1, colour=True)


def test_a_synth_stopped_by_sigterm_leaves_no_temporary_folder(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "corpus"
    proc = subprocess.Popen([sys.executable, "-c", "from mercore.cli import main; main()", "synth", "--out", str(out),
                             "--subjects", "16", "--size", "64"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not any(p.is_file() for p in tmp_path.rglob("*.jpg")):  # frames are being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert f"stopped by SIGTERM: nothing written to {out}" in err
    assert list(tmp_path.iterdir()) == []


def test_folders_of_killed_generators_are_removed_by_the_next(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".corpus.tmp-{int(dead.stdout)}-abc"   # a generator killed outright (SIGKILL)
    running = tmp_path / f".corpus.tmp-{os.getpid()}-xyz"       # one still at work (this process)
    for folder in (orphan, running):
        (folder / "sub01").mkdir(parents=True)
    generate(tmp_path / "corpus", subjects=1, clips_per_subject=1, size=32, min_frames=3, max_frames=4)
    assert not orphan.exists() and running.exists()


def test_bad_generator_options_name_the_option(tmp_path):
    from mercore.config import ConfigError

    with pytest.raises(ConfigError, match="-D option of the synthetic corpus: generator parameter 'subjects': "
                                          "expected an integer, got 'abc'"):
        SyntheticDataset().load(None, LoadOptions(cache_dir=tmp_path, extra={"subjects": "abc"}))


def test_a_damaged_generator_json_regenerates_the_cached_corpus_and_names_a_given_one(tmp_path, caplog):
    opts = LoadOptions(task="megc3", cache_dir=tmp_path / "cache",
                       extra={"subjects": 2, "clips_per_subject": 2, "size": 32, "max_frames": 22})
    ds = SyntheticDataset()
    root = ds.ensure(opts)
    meta = root / "generator.json"
    whole = meta.read_text()
    want = [s.key for s in ds.load(None, opts).samples]
    for damaged in (whole[: len(whole) // 2], "[]", ""):
        meta.write_text(damaged)
        caplog.clear()
        assert [s.key for s in ds.load(None, opts).samples] == want
        assert meta.read_text() == whole
        (message,) = [r.getMessage() for r in caplog.records]
        assert message.startswith(f"{meta} is damaged") and message.endswith(f"generating the synthetic corpus in {root} again")
    meta.write_text(whole[:10])  # a corpus the user gave: named, not rewritten
    with pytest.raises(synthetic.dataset.DatasetError, match=rf"^{meta} is damaged .*mer synth --out DIR --overwrite"):
        ds.load(root, opts)
