"""Reports: run folders rebuilt, metrics beside the paper's, figures inlined, leaky figure labelled."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from mercore.cli import cli
from mercore.reporting.html import ReportError, load_run, loss_curves, resolve_run, write_report
from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec

CATALOGUE = {"toy": {"reported": [
    {"variant": "a", "task": "megc3", "dataset": "toy", "uf1": 0.912, "uar": 0.934, "source": "Table 9"},
    {"variant": "b", "task": "megc3", "dataset": "toy", "uf1": 0.111, "uar": 0.222, "source": "Table 8"},
]}}


class Page(HTMLParser):
    """Collects tables (as rows of cell texts) and <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self.tables[-1].append(self._row)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from mercore.plugins import load_registry
    from tests.conftest import make_toy_plugin

    registry = load_registry(only=[], extra_plugins=[("toy", make_toy_plugin())])
    return run(RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2", "s3"]),
               ExecutionOptions(cache_dir=tmp_path_factory.mktemp("report"), progress=False, tracking=False),
               registry=registry)


def test_load_run_rebuilds_the_result(toy_run):
    loaded = load_run(toy_run.run_dir)
    assert loaded.metrics == toy_run.metrics
    assert loaded.class_names == toy_run.class_names and loaded.variant == "a"
    assert loaded.leaky_scores().as_dict() == toy_run.leaky_scores().as_dict()
    assert [f.history for f in loaded.folds] == [f.history for f in toy_run.folds]


def test_report_tables_images_paper_numbers_and_leakage(toy_run, tmp_path):
    paths = write_report(toy_run, tmp_path, catalogue=CATALOGUE)
    assert {p.name for p in paths} >= {"report.html", "report.md", "report_confusion_matrix.png",
                                       "report_per_subject_accuracy.png", "report_training_curves.png"}
    page = parse(tmp_path / "report.html")
    assert len(page.images) == 3 and all(src.startswith("data:image/png;base64,iVBOR") for src in page.images)
    metrics = page.tables[0]
    assert metrics[0][:4] == ["data", "n", "UF1", "UF1 paper"]
    assert metrics[1][0] == "toy" and metrics[1][3] == "0.9120" and metrics[1][5] == "0.9340"  # variant a only
    assert metrics[1][2] == f"{toy_run.metrics['uf1']:.4f}"
    assert metrics[2][0] == "majority baseline"
    leak = next(t for t in page.tables if t[1][0].startswith("honest"))
    assert leak[2][0].startswith("LEAKY") and leak[2][1] == f"{toy_run.leaky_scores().uf1:.4f}"
    html = (tmp_path / "report.html").read_text()
    assert "uses the test labels to choose the model" in html
    assert "NOT comparable" not in html  # a real (non-synthetic) dataset
    subjects = next(t for t in page.tables if t[0][0] == "test subject")
    assert [r[0] for r in subjects[1:]] == [f.fold for f in toy_run.folds]
    md = (tmp_path / "report.md").read_text()
    assert "| toy | 36 |" in md and "![Confusion matrix" in md and "(report_confusion_matrix.png)" in md


def test_synthetic_runs_are_labelled_not_comparable(toy_run, tmp_path):
    synthetic = dataclasses.replace(toy_run, dataset="synthetic", folds=[
        dataclasses.replace(f, datasets=["synthetic"] * len(f.keys)) for f in toy_run.folds])
    write_report(synthetic, tmp_path, catalogue=CATALOGUE)
    page = parse(tmp_path / "report.html")
    assert page.tables[0][1][3] == "-"  # no paper figure beside a synthetic number
    assert any(t[1][:2] == ["toy", "0.9120"] for t in page.tables)  # listed apart, for orientation
    assert "NOT comparable" in (tmp_path / "report.html").read_text()


def test_several_runs_side_by_side(toy_run, tmp_path):
    write_report([toy_run, toy_run], tmp_path, catalogue=CATALOGUE)
    page = parse(tmp_path / "report.html")
    side = page.tables[0]
    assert side[0][0] == "#" and [r[0] for r in side[1:]] == ["1", "2"]
    assert len(page.images) == 2 + 2 * 3  # headline confusion matrices + each run's three figures
    assert (tmp_path / "run2_training_curves.png").is_file()


def test_set_overrides_are_recorded_and_shown_by_reports_and_compare(toy_registry, toy_run, tmp_path):
    """A 2-epoch run must not read as a plain quick run: its --set is in summary.json, the report
    (as <code>, never as literal backticks) and `mer compare`'s description of it."""
    short = run(RunSpec("toy", dataset="toy", overrides=["train.epochs=2"], subjects=["s0", "s1", "s2", "s3"]),
                ExecutionOptions(cache_dir=tmp_path / "c", progress=False, tracking=False), registry=toy_registry)
    summary = json.loads((short.run_dir / "artifacts" / "summary.json").read_text())
    assert summary["overrides"] == ["--set train.epochs=2"] and summary["profile"] == "quick"
    assert load_run(short.run_dir).overrides == ["--set train.epochs=2"]
    write_report([toy_run, load_run(short.run_dir)], tmp_path / "r", catalogue=CATALOGUE)
    side = parse(tmp_path / "r" / "report.html").tables[0]
    column = side[0].index("overrides")
    assert [row[column] for row in side[1:]] == ["none", "--set train.epochs=2"]
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<code>--set train.epochs=2</code>" in page and "`" not in page
    assert "`--set train.epochs=2`" in (tmp_path / "r" / "report.md").read_text()
    out = CliRunner().invoke(cli, ["compare", str(toy_run.run_dir), str(short.run_dir), "--permutations", "100"])
    assert out.exit_code == 0, out.output
    assert "A: toy (a) on toy, profile quick, overrides: none, seed 0" in out.output
    assert "B: toy (a) on toy, profile quick, overrides: --set train.epochs=2, seed 0" in out.output


def test_loss_curves_average_over_the_folds_that_reached_an_epoch():
    from mercore.evaluation.results import FoldResult

    def fold(i, hist):
        return FoldResult(i, f"s{i}", [], [], [], [], [], [], [], history=hist)

    curves = loss_curves([fold(0, [("train/loss", 1.0, 0), ("train/loss", 0.5, 1), ("train/val_uf1", 0.3, 0)]),
                          fold(1, [("train/loss", 3.0, 0)])])
    assert curves == {"train/loss": ([0, 1], [2.0, 0.5], [2, 1])}


def test_cli_report_from_folder_and_mlflow_id(toy_registry, tmp_path, mlflow_uri):
    tracked = run(RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2"]),
                  ExecutionOptions(cache_dir=tmp_path / "cache", progress=False, tracking_uri=mlflow_uri,
                                   experiment="report"),
                  registry=toy_registry)
    assert resolve_run(tracked.mlflow_run_id, mlflow_uri) == tracked.run_dir
    out = CliRunner().invoke(cli, ["report", tracked.mlflow_run_id, str(tracked.run_dir), "--out", str(tmp_path / "r"),
                                   "--tracking-uri", mlflow_uri])
    assert out.exit_code == 0, out.output
    assert len(parse(tmp_path / "r" / "report.html").tables[0]) == 3  # side-by-side table: header + 2 runs
    bad = CliRunner().invoke(cli, ["report", "0123456789abcdef", "--tracking-uri", mlflow_uri])
    assert bad.exit_code != 0 and "neither a run folder nor an MLflow run id" in bad.output
    with pytest.raises(ReportError, match="not a finished run folder"):
        load_run(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(toy_run, tmp_path):
    write_report(toy_run, tmp_path, catalogue=CATALOGUE)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    f"--screenshot={shot}", "--window-size=1200,2000", (tmp_path / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page with figures, not a blank one
