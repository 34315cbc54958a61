"""Human-readable reports of finished runs: a self-contained HTML page and a Markdown file.

A report puts our pooled LOSO metrics next to the paper's own figures (``registry.yaml``,
matched by method, variant, task and dataset), labels which corpus and profile produced ours,
and shows confusion matrices, per-class recall, per-subject accuracy, training curves and the
leakage audit (what a test-subject epoch selection would have reported, clearly marked). Runs
are rebuilt from their run folders (:func:`load_run`), so a report can be made any time later.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from ..evaluation.results import FoldResult, RunResult, SeedsResult
from ..io import atomic_write_bytes, atomic_write_text
from ..metrics import Scores
from .artifacts import LEAKY_LABEL, confusion_png, interval_lines, overrides_text

METRICS = (("uf1", "UF1"), ("uar", "UAR"), ("acc", "Acc"), ("weighted_f1", "weighted F1"))
LEAKY_EXPLANATION = (
    "The leaky figure keeps, in every fold, the epoch whose predictions on the held-out test subject "
    "were best, i.e. it uses the test labels to choose the model (as training loops that keep the "
    "best test epoch do). It is inflated by that selection and is shown only to measure the "
    "inflation; the honest figure never looks at the test subject before predicting it.")


class ReportError(ValueError):
    """A run folder or run id that cannot be turned into a report; the message says why."""


# ------------------------------------------------------------------------------ loading runs
#: what a report reads of a run's summary.json
SUMMARY_KEYS = ("method", "dataset", "task", "classes")
#: what to do about a damaged file of a run folder
RERUN = "rerun the same `mer run` to write it again (finished folds are reused)"


def _read_artifact(path: Path, parse: Callable[[str], Any], kind: str) -> Any:
    """``path`` parsed, or a one-line ReportError naming it (a truncated copy, a bad edit)."""
    try:
        return parse(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ReportError(f"{path} is damaged: not valid {kind} ({' '.join(str(exc).split())}); {RERUN}") from None


def load_run(run_dir: Path | str) -> RunResult:
    """Rebuild a :class:`RunResult` from a run folder (``folds/*.json`` + ``artifacts/``), or from a
    folder of a run's artifacts alone (``summary.json``, ``config.yaml``, ``predictions.csv``: what
    is kept of a run to recompute its figures; no training curves or leakage audit)."""
    run_dir = Path(run_dir)
    stored = not (run_dir / "artifacts").is_dir() and (run_dir / "predictions.csv").is_file()
    artifacts = run_dir if stored else run_dir / "artifacts"
    summary_path, config_path = artifacts / "summary.json", artifacts / "config.yaml"
    for path in (summary_path, config_path):
        if not path.is_file():
            raise ReportError(f"{run_dir} is not a finished run folder: {path.relative_to(run_dir)} is missing")
    summary = _read_artifact(summary_path, json.loads, "JSON")
    config = _read_artifact(config_path, yaml.safe_load, "YAML") or {}
    lacking = [k for k in SUMMARY_KEYS if k not in summary] if isinstance(summary, dict) else list(SUMMARY_KEYS)
    if lacking or not isinstance(config, dict):
        path = summary_path if lacking else config_path
        raise ReportError(f"{path} is damaged ({'it lacks ' + ', '.join(lacking) if lacking else 'not a mapping'}); "
                          f"{RERUN}")
    if stored:
        folds = folds_from_predictions(artifacts / "predictions.csv", tuple(summary["classes"]))
    else:
        folds = []
        for path in sorted((run_dir / "folds").glob("*.json")):
            fold = FoldResult.load(path)
            if fold is None:
                raise ReportError(f"{path} is damaged (not a fold record); {RERUN}")
            folds.append(fold)
    if not folds:
        raise ReportError(f"{run_dir} has no fold results (folds/*.json)")
    folds.sort(key=lambda f: f.index)
    return RunResult(summary["method"], summary.get("variant"), summary["dataset"], summary["task"],
                     tuple(summary["classes"]), config, folds, run_dir, environment=summary.get("environment", {}),
                     overrides=list(summary.get("overrides") or []))


def folds_from_predictions(path: Path, classes: tuple[str, ...]) -> list[FoldResult]:
    """The folds of a run as its ``predictions.csv`` holds them (rows of one fold together, in
    fold order); a row that does not fit names its line."""
    folds: dict[str, FoldResult] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"fold", "key", "dataset", "subject", "label", "prediction", "baseline", *(f"p_{c}" for c in classes)}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise ReportError(f"{path} lacks the columns {sorted(missing)} (written by an older mer?)")
        for line, row in enumerate(reader, start=2):
            try:
                fold = folds.setdefault(row["fold"], FoldResult(len(folds), row["fold"], [], [], [], [], [], [], []))
                fold.keys.append(row["key"])
                fold.datasets.append(row["dataset"])
                fold.subjects.append(row["subject"])
                fold.y_true.append(classes.index(row["label"]))
                fold.y_pred.append(classes.index(row["prediction"]))
                fold.baseline_pred.append(classes.index(row["baseline"]))
                fold.probabilities.append([float(row[f"p_{c}"]) for c in classes])
            except ValueError as exc:
                raise ReportError(f"{path} line {line}: {exc}") from None
    return list(folds.values())


def load_result(folder: Path | str) -> RunResult | SeedsResult:
    """A run folder, or a ``mer run --seeds`` folder (``seeds.json`` naming its seeds' run folders)."""
    folder = Path(folder)
    index = folder / "seeds.json"
    if not index.is_file():
        return load_run(folder)
    try:
        names = json.loads(index.read_text())["runs"]
    except (ValueError, KeyError, TypeError):
        raise ReportError(f"unreadable {index}") from None
    return SeedsResult([load_run(folder.parent.parent / "runs" / name) for name in names], folder)


#: an MLflow run id: every store names its runs by a random UUID in hex
RUN_ID = re.compile(r"[0-9a-f]{32}")


def resolve_run(ref: str, tracking_uri: str | None = None) -> Path:
    """A run folder as given, or the folder an MLflow run id points to (tag ``mer.run_dir``).

    Only what could be a run id (:data:`RUN_ID`, and no file of that name) is looked up in MLflow;
    anything else fails at once, without opening (let alone creating) a store. A store that
    fails is a :class:`~mercore.tracking.TrackingError`.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ReportError(f"{ref} is a file, not a run folder; `mer runs` lists the run folders")
    if not RUN_ID.fullmatch(ref):
        raise ReportError(f"{ref!r} is neither a run folder nor an MLflow run id (32 hex digits): no such folder; "
                          "`mer runs` lists the run folders")
    from ..tracking import find_run, resolved_uri, store_file

    uri = resolved_uri(tracking_uri)
    run = find_run(ref, uri)
    if run is None:
        local = store_file(uri)
        if local is not None and not local.exists():
            raise ReportError(f"{ref!r} is not a run folder, and there is no MLflow store {uri} to look it up in as a "
                              "run id; give the --tracking-uri the run was logged to")
        raise ReportError(f"{ref!r} is neither a run folder nor an MLflow run id in the tracking store {uri}")
    folder = run.data.tags.get("mer.run_dir")
    if not folder:
        raise ReportError(f"MLflow run {ref} has no tag mer.run_dir (not a `mer run` parent run?)")
    if not Path(folder).is_dir():
        raise ReportError(f"MLflow run {ref} points to {folder}, which does not exist (moved or deleted?)")
    return Path(folder)


# ------------------------------------------------------------------------------ paper figures
def reported_figures(result: RunResult, catalogue: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The paper's printed numbers for this method, variant and task (all datasets)."""
    from ..catalogue import read_catalogue

    catalogue = read_catalogue() if catalogue is None else catalogue
    entries = (catalogue.get(result.method) or {}).get("reported") or []
    return [e for e in entries if e.get("task") == result.task
            and (e.get("variant") is None or e.get("variant") == result.variant)]


def paper_dataset(result: RunResult, dataset: str | None) -> str:
    """The ``reported`` dataset name our row corresponds to: the composite when pooling several."""
    if dataset is None:
        return "composite" if len(result.datasets) > 1 else result.dataset
    return dataset


def comparable(result: RunResult) -> bool:
    """Only real corpora can be put beside the papers' numbers; the synthetic one never."""
    return result.dataset != "synthetic" and "synthetic" not in result.datasets


def corpus_label(result: RunResult) -> str:
    profile = result.config.get("meta", {}).get("profile", "paper")
    what = ("the built-in SYNTHETIC corpus: these numbers are NOT comparable to the paper's, which are on real corpora"
            if not comparable(result) else f"the {result.dataset} corpus")
    setup = "the paper's setup" if profile == "paper" else f"profile `{profile}` (not the paper's setup)"
    return f"{what}; {setup}"


# ------------------------------------------------------------------------------ figures
def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _figure()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def loss_curves(folds: Sequence[FoldResult]) -> dict[str, tuple[list[int], list[float], list[int]]]:
    """``stage/...loss`` key -> (epochs, mean over the folds that reached the epoch, fold counts)."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for fold in folds:
        for key, value, step in fold.history:
            if key.endswith("loss") and math.isfinite(value):
                values[key][int(step)].append(float(value))
    out = {}
    for key, per_epoch in sorted(values.items()):
        epochs = sorted(per_epoch)
        out[key] = (epochs, [float(np.mean(per_epoch[e])) for e in epochs], [len(per_epoch[e]) for e in epochs])
    return out


def curves_png(result: RunResult) -> bytes | None:
    curves = loss_curves(result.folds)
    if not curves:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for key, (epochs, mean, _) in curves.items():
        ax.plot(epochs, mean, marker="o" if len(epochs) < 15 else None, markersize=3, label=key)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over folds)")
    ax.set_title(f"{_run_title(result)}: training curves")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def subject_png(result: RunResult) -> bytes:
    per_subject = result.per_subject_accuracy()
    plt = _figure()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(per_subject) + 1.5), 3.2), dpi=100)
    names = [n.split("/")[-1] if len({s.split('/')[0] for s in per_subject}) == 1 else n for n in per_subject]
    ax.bar(range(len(names)), list(per_subject.values()), color="#4878a8")
    ax.axhline(result.scores().acc, color="black", linestyle="--", linewidth=1, label="pooled accuracy")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy per test subject", fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


# ------------------------------------------------------------------------------ content
@dataclass
class Section:
    """One run's part of a report: text blocks (Markdown and HTML) and images by file name."""

    title: str
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)
    alts: dict[str, str] = field(default_factory=dict)
    headline: str = ""  # the image shown again when runs are put side by side

    def text(self, markdown: str, html_text: str | None = None) -> None:
        self.md.append(markdown)
        self.html.append(html_text if html_text is not None else f"<p>{inline_html(markdown)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> None:
        cells = [[_fmt(c) for c in row] for row in rows]
        md = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        md += ["| " + " | ".join(row) + " |" for row in cells]
        self.md.append(("**" + caption + "**\n\n" if caption else "") + "\n".join(md))
        head = "".join(f"<th>{inline_html(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in row) + "</tr>" for row in cells)
        cap = f"<caption>{inline_html(caption)}</caption>" if caption else ""
        self.html.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def image(self, name: str, data: bytes, alt: str) -> None:
        self.images[name] = data
        self.alts[name] = alt
        self.md.append(f"![{alt}]({name})")
        self.html.append(self.figure(name))

    def figure(self, name: str, label: str = "") -> str:
        """An <img> with the PNG inlined as base64, so the page needs no other file."""
        alt = html.escape(label + self.alts[name])
        return (f'<figure><img alt="{alt}" src="data:image/png;base64,{base64.b64encode(self.images[name]).decode()}">'
                f"<figcaption>{alt}</figcaption></figure>")


def inline_html(markdown: str) -> str:
    """Escaped text with Markdown's inline `code` as <code>: the texts are written once for both
    outputs, and literal backticks in the HTML read as noise."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(markdown))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _run_title(result: RunResult) -> str:
    return f"{result.method}{' (' + result.variant + ')' if result.variant else ''} on {result.dataset} [{result.task}]"


def _paper_cells(entry: dict[str, Any] | None) -> list[Any]:
    if entry is None:
        return [None, None, None]
    uf1 = entry.get("uf1", entry.get("f1"))
    return [f"{uf1:.4f}{'*' if 'uf1' not in entry and 'f1' in entry else ''}" if uf1 is not None else None,
            entry.get("uar"), entry.get("acc")]


def run_section(result: RunResult, prefix: str = "", catalogue: dict[str, Any] | None = None) -> Section:
    """The report of one run; image files are named ``<prefix><figure>.png``."""
    section = Section(_run_title(result))
    n = sum(len(f.keys) for f in result.folds)
    section.text(f"LOSO over {len(result.folds)} test subjects, {n} samples, predictions pooled over folds "
                 f"before computing the metrics. Ours: {corpus_label(result)}. Run folder: `{result.run_dir}`.")
    section.text(f"Overrides of the profile's config: `{overrides_text(result)}`.")
    tuned = result.config.get("tune")
    if tuned:
        section.text(f"Nested tuning (mer tune): per outer fold {tuned['trials']} trials scored by "
                     f"{tuned['inner_folds']}-fold subject-wise cross-validation on its training subjects, over "
                     f"{', '.join(tuned['space'])}; "
                     "each test subject predicted once with its fold's chosen values (artifacts/tune.json).")
    # metrics beside the paper's
    reported = reported_figures(result, catalogue)
    by_dataset = {e.get("dataset"): e for e in reported}
    use_paper = comparable(result)
    rows = []
    blocks: list[tuple[str, str | None, Scores]] = [("all" if len(result.datasets) > 1 else result.dataset, None,
                                                      result.scores())]
    if len(result.datasets) > 1:
        blocks += [(d, d, s) for d, s in result.per_dataset().items()]
    for label, dataset, s in blocks:
        paper = by_dataset.get(paper_dataset(result, dataset)) if use_paper else None
        iv = result.intervals(dataset)
        rows.append([label, s.n, s.uf1, *_paper_cells(paper)[:1], s.uar, _paper_cells(paper)[1], s.acc,
                     _paper_cells(paper)[2], s.weighted_f1, (paper or {}).get("source"), str(iv["uf1"]),
                     str(iv["uar"])])
    base = result.baseline_scores()
    rows.append(["majority baseline", base.n, base.uf1, None, base.uar, None, base.acc, None, base.weighted_f1, None,
                 None, None])
    section.table(["data", "n", "UF1", "UF1 paper", "UAR", "UAR paper", "Acc", "Acc paper", "weighted F1",
                   "paper source", "UF1 95% CI", "UAR 95% CI"], rows,
                  "Metrics (ours, pooled LOSO) beside the paper's own figures")
    section.text(" ".join(interval_lines(result)))
    if any("uf1" not in e and "f1" in e for e in reported):
        section.text("* the paper prints an F1 column (macro F1 over the classes), shown under UF1.")
    if not use_paper:
        if reported:
            section.text("The paper's own figures on real corpora, for orientation only: the synthetic corpus is "
                         "not the paper's data, so they are not comparable with ours.")
            section.table(["paper dataset", "UF1", "UAR", "Acc", "source"],
                          [[e.get("dataset"), *_paper_cells(e)[:1], e.get("uar"), e.get("acc"), e.get("source")]
                           for e in reported], f"{result.method} as reported by its paper ({result.task})")
        else:
            section.text(f"registry.yaml holds no printed figure of {result.method} for task {result.task}.")
    elif not reported:
        section.text(f"registry.yaml holds no printed figure of {result.method} for task {result.task}.")
    # leakage audit
    leaky = result.leaky_scores()
    if leaky is None:
        section.text("Leakage audit: not recorded for this run (evaluation.leakage_audit was off).")
    else:
        honest = result.scores()
        section.table(["figure", *[m for _, m in METRICS]],
                      [["honest (reported result)", *[getattr(honest, k) for k, _ in METRICS]],
                       ["LEAKY: best epoch chosen on the test subject", *[getattr(leaky, k) for k, _ in METRICS]],
                       ["inflation (leaky - honest)", *[getattr(leaky, k) - getattr(honest, k) for k, _ in METRICS]]],
                      f"Leakage audit ({LEAKY_LABEL})")
        section.text(LEAKY_EXPLANATION)
    # per class
    s = result.scores()
    section.table(["class", "n", "recall", "F1"],
                  [[c, int(s.confusion[i].sum()), s.per_class_recall[i], s.per_class_f1[i]]
                   for i, c in enumerate(result.class_names)], "Per-class recall and F1 (pooled)")
    section.headline = f"{prefix}confusion_matrix.png"
    section.image(section.headline, confusion_png(s.confusion, result.class_names, _run_title(result)),
                  f"Confusion matrix, {_run_title(result)}")
    if len(result.datasets) > 1:
        for d, ds in result.per_dataset().items():
            section.image(f"{prefix}confusion_matrix_{d}.png",
                          confusion_png(ds.confusion, result.class_names, f"{result.method} on {d}"),
                          f"Confusion matrix, {result.method} on {d}")
    # per subject
    section.table(["test subject", "n", "accuracy"],
                  [[f.fold, len(f.keys), result.per_subject_accuracy()[f.fold]] for f in result.folds],
                  "Accuracy per test subject")
    section.image(f"{prefix}per_subject_accuracy.png", subject_png(result), f"Per-subject accuracy, {_run_title(result)}")
    curves = curves_png(result)
    if curves is not None:
        section.image(f"{prefix}training_curves.png", curves,
                      f"Training curves (mean over folds per epoch), {_run_title(result)}")
    if result.environment:
        section.table(["software", "version"], sorted(result.environment.items()), "Computed with")
    return section


def comparison_rows(results: Sequence[RunResult]) -> list[list[Any]]:
    rows = []
    for i, r in enumerate(results, 1):
        s, iv = r.scores(), r.intervals()
        rows.append([i, r.method, r.variant, r.dataset, r.task, r.config.get("meta", {}).get("profile"),
                     f"`{overrides_text(r)}`", r.seed, len(r.folds), s.n, s.uf1, str(iv["uf1"]), s.uar,
                     str(iv["uar"]), s.acc,
                     r.baseline_scores().uf1])
    return rows


def leaky_rows(results: Sequence[RunResult]) -> list[list[Any]]:
    """The audit of each run, kept out of the results table."""
    rows = []
    for i, r in enumerate(results, 1):
        leaky = r.leaky_scores()
        if leaky is not None:
            rows.append([i, leaky.uf1, leaky.uf1 - r.scores().uf1, leaky.uar, leaky.uar - r.scores().uar])
    return rows


def seeds_section(result: SeedsResult) -> Section:
    """Each seed's figures with intervals, their mean +- std and the interval of the seed mean."""
    from .artifacts import seeds_table

    section = Section(f"{_run_title(result.first)}: {len(result.runs)} seeds")
    section.text(f"The same LOSO configuration run once per seed ({', '.join(map(str, result.seeds))}); "
                 f"aggregate folder: `{result.run_dir}`. Each seed's run is reported below.")
    md = seeds_table(result)
    table, _, note = md.partition("\n\n")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    section.table(rows[0], rows[2:], "UF1 / UAR per seed, mean +- std over seeds")
    section.text(note.strip())
    return section


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}caption{font-weight:bold;text-align:left;padding:4px 0}
caption{white-space:nowrap}thead{background:#eef}figure{margin:0.5em}img{max-width:100%}
.row{display:flex;flex-wrap:wrap;gap:1em}.row figure{flex:1 1 320px;max-width:48%}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:0.5em 1em}
section{border-top:2px solid #ccc;margin-top:2em}"""


def render(results: Sequence[RunResult], catalogue: dict[str, Any] | None = None,
           preface: Sequence[Section] = ()) -> tuple[str, str, dict[str, bytes]]:
    """(HTML, Markdown, images by file name) of a report on ``results``; ``preface`` sections (seed
    aggregates, paired comparisons) come before the runs."""
    if not results:
        raise ReportError("no runs to report")
    sections = [run_section(r, f"run{i}_" if len(results) > 1 else "report_", catalogue)
                for i, r in enumerate(results, 1)]
    titles = [s.title for s in sections]
    for section, r in zip(sections, results):
        if titles.count(section.title) > 1:  # the seeds of one configuration
            section.title += f", seed {r.seed}"
    title = "mer report: " + ", ".join(dict.fromkeys(titles))
    md = [f"# {title}"]
    body = [f"<h1>{html.escape(title)}</h1>"]
    if any(not comparable(r) for r in results):
        warn = ("Runs on the synthetic corpus measure whether a method learns on generated clips; their numbers are "
                "NOT comparable to the papers' figures on real corpora.")
        md.append(f"> **Note:** {warn}")
        body.append(f'<p class="warn"><b>Note:</b> {html.escape(warn)}</p>')
    for s in preface:
        md += [f"## {s.title}", *s.md]
        body.append(f"<section><h2>{html.escape(s.title)}</h2>{''.join(s.html)}</section>")
    if len(results) > 1:
        side = Section("side by side")
        side.table(["#", "method", "variant", "dataset", "task", "profile", "overrides", "seed", "folds", "n", "UF1",
                    "UF1 95% CI", "UAR", "UAR 95% CI", "Acc", "baseline UF1"], comparison_rows(results),
                   "Runs side by side")
        leaky = leaky_rows(results)
        if leaky:
            side.table(["#", "LEAKY UF1", "inflation", "LEAKY UAR", "inflation"], leaky,
                       f"Leakage audit: best epoch on the test subject ({LEAKY_LABEL})")
        md += side.md
        body += side.html
        body.append('<div class="row">' + "".join(s.figure(s.headline, f"run {i}: ")
                                                   for i, s in enumerate(sections, 1)) + "</div>")
    images: dict[str, bytes] = {}
    for s in sections:
        md += [f"## {s.title}", *s.md]
        body.append(f"<section><h2>{html.escape(s.title)}</h2>{''.join(s.html)}</section>")
        images.update(s.images)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    return page, "\n\n".join(md) + "\n", images


def write_report(result: RunResult | SeedsResult | Sequence[RunResult | SeedsResult], out_dir: Path | str,
                 catalogue: dict[str, Any] | None = None, preface: Sequence[Section] = ()) -> list[Path]:
    """Write ``report.html`` (self-contained), ``report.md`` and its images into ``out_dir``;
    return the paths (the runner logs them as MLflow artifacts). A multi-seed result adds its
    seed table before the seeds' runs."""
    items = [result] if isinstance(result, (RunResult, SeedsResult)) else list(result)
    results: list[RunResult] = []
    sections = list(preface)
    for item in items:
        if isinstance(item, SeedsResult):
            sections.append(seeds_section(item))
            results += item.runs
        else:
            results.append(item)
    out_dir = Path(out_dir)
    page, md, images = render(results, catalogue, sections)
    paths = []
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
        paths.append(out_dir / name)
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", page)
    return [out_dir / "report.html", out_dir / "report.md", *paths]
