"""`mer compare`: paired differences of two runs over the same samples, refused otherwise."""
from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from mercore.cli import cli
from mercore.compare import CompareError, compare
from mercore.evaluation.results import FoldResult, RunResult
from mercore.reporting.html import load_result
from mercore.reporting.artifacts import write_artifacts

LABELS = [0, 1, 2, 0, 1, 0]  # per subject; subjects 0-7 of corpus "x", 8-11 of corpus "y"


def make_run(folder, right: dict[int, int], seed: int = 0, drop: str | None = None) -> RunResult:
    """12 subjects of 6 clips; subject s has ``right[s]`` clips (default 3) predicted correctly."""
    folds = []
    for s in range(12):
        corpus = "x" if s < 8 else "y"
        keys = [f"{corpus}/s{s}/c{c}" for c in range(6)]
        n = right.get(s, 3)
        pred = [t if c < n else (t + 1) % 3 for c, t in enumerate(LABELS)]
        kept = [i for i, k in enumerate(keys) if k != drop]
        folds.append(FoldResult(s, f"{corpus}/s{s}", [keys[i] for i in kept], [corpus] * len(kept),
                                [f"{corpus}/s{s}"] * len(kept), [LABELS[i] for i in kept], [pred[i] for i in kept],
                                [[1.0, 0.0, 0.0]] * len(kept), [0] * len(kept)))
    config = {"run": {"seed": seed}, "evaluation": {"bootstrap": {"resamples": 1000, "seed": 0}},
              "meta": {"profile": "quick"}}
    result = RunResult("m", "base", "xy", "megc3", ("neg", "pos", "sur"), config, folds, folder)
    for f in folds:
        f.save(folder / "folds" / f"{f.index:03d}.json")
    write_artifacts(result, folder / "artifacts")
    return result


def test_known_better_run_gives_a_positive_difference_pooled_and_per_corpus(tmp_path):
    a = make_run(tmp_path / "a", {})
    b = make_run(tmp_path / "b", {s: 6 for s in range(8)})  # B right on every clip of corpus x
    cmp = compare(a, b, permutations=2000)
    assert set(cmp.parts) == {"all", "x", "y"}
    assert cmp.parts["all"]["uf1"].delta == pytest.approx(b.scores().uf1 - a.scores().uf1)
    assert cmp.parts["all"]["uf1"].delta > 0 and cmp.parts["all"]["uf1"].interval.low > 0
    assert cmp.parts["x"]["uar"].delta > 0 and cmp.parts["x"]["uar"].p_value < 0.05
    assert cmp.parts["y"]["uf1"].delta == 0 and cmp.parts["y"]["uf1"].p_value == 1.0
    assert cmp.samples == {"all": 72, "x": 48, "y": 24} and cmp.subjects == {"all": 12, "x": 8, "y": 4}
    reverse = compare(b, a, permutations=2000)
    assert reverse.parts["all"]["uf1"].delta == pytest.approx(-cmp.parts["all"]["uf1"].delta)


def test_cli_compare_prints_the_difference_and_refuses_other_samples(tmp_path):
    make_run(tmp_path / "a", {})
    make_run(tmp_path / "b", {0: 6, 1: 6})
    make_run(tmp_path / "c", {}, drop="x/s3/c2")
    out = CliRunner().invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--permutations", "500"])
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if line.startswith("| all |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5].startswith("+0.") and cells[10].startswith("+0.")  # UF1 and UAR: B - A > 0
    assert "permutation" in out.output
    bad = CliRunner().invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "c")])
    assert bad.exit_code != 0
    assert "different samples: 1 only in A (x/s3/c2)" in bad.output


def test_other_labels_or_task_are_refused(tmp_path):
    a = make_run(tmp_path / "a", {})
    other_task = dataclasses.replace(a, task="sde5")
    with pytest.raises(CompareError, match="same task"):
        compare(a, other_task)
    relabelled = dataclasses.replace(a, folds=[dataclasses.replace(f, y_true=[(t + 1) % 3 for t in f.y_true])
                                               for f in a.folds])
    with pytest.raises(CompareError, match="disagree on the labels"):
        compare(a, relabelled)


def test_seed_folders_compare_seed_means_and_report_includes_the_comparison(tmp_path):
    runs = tmp_path / "cache" / "runs"
    for name, right, seed in (("a0", {}, 0), ("a1", {0: 4}, 1), ("b0", {s: 5 for s in range(8)}, 0),
                              ("b1", {s: 6 for s in range(8)}, 1)):
        make_run(runs / name, right, seed)
    for name in ("A", "B"):
        folder = tmp_path / "cache" / "seeds" / name
        folder.mkdir(parents=True)
        (folder / "seeds.json").write_text(json.dumps({"seeds": [0, 1], "runs": [f"{name.lower()}0", f"{name.lower()}1"]}))
    a, b = load_result(tmp_path / "cache" / "seeds" / "A"), load_result(tmp_path / "cache" / "seeds" / "B")
    cmp = compare(a, b, permutations=500)
    means = [sum(r.scores().uf1 for r in x.runs) / 2 for x in (a, b)]
    assert cmp.seeds == 2 and cmp.parts["all"]["uf1"].delta == pytest.approx(means[1] - means[0])
    assert cmp.per_seed["all"]["uf1"] == pytest.approx([b.runs[i].scores().uf1 - a.runs[i].scores().uf1
                                                        for i in range(2)])
    with pytest.raises(CompareError, match="seed"):
        compare(a, a.runs[0])
    out = CliRunner().invoke(cli, ["report", str(tmp_path / "cache" / "seeds" / "A"),
                                   str(tmp_path / "cache" / "seeds" / "B"), "--compare", "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Paired comparison" in md and "seed means" in md and "B - A per seed pair" in md
    assert md.count("UF1 / UAR per seed, mean +- std over seeds") == 2
