"""``mer compare``: is B really better than A? A paired comparison of two runs over the same samples.

Both runs predicted the same test subjects, so their errors are correlated; comparing their two
intervals side by side would overstate the uncertainty of the difference. The paired bootstrap
resamples subjects once for both runs and takes the difference per resample; the permutation
test swaps each subject's A and B predictions at random (what "no difference" would allow).
Multi-seed results compare the seed means, seed for seed over the same resamples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .evaluation.results import RunResult, SeedsResult, differing_samples, stacked_predictions
from .evaluation.statistics import DEFAULT_PERMUTATIONS, LEVEL, Difference, paired_differences
from .metrics import scores
from .reporting.artifacts import overrides_text


class CompareError(ValueError):
    """Two runs that cannot be compared; the message says what differs."""


@dataclass
class Comparison:
    """B - A per part ("all" or a corpus of a composite): UF1 and UAR differences with intervals."""

    label_a: str
    label_b: str
    seeds: int
    parts: dict[str, dict[str, Difference]]
    #: part -> metric -> B - A of each seed pair (A's i-th seed against B's i-th), without resampling
    per_seed: dict[str, dict[str, list[float]]]
    samples: dict[str, int]
    subjects: dict[str, int]
    resamples: int
    permutations: int
    seed: int


def _runs(result: RunResult | SeedsResult) -> list[RunResult]:
    return list(result.runs) if isinstance(result, SeedsResult) else [result]


def describe(result: RunResult | SeedsResult) -> str:
    """``method (variant) on dataset, profile P, overrides O[, tuned ...], seed(s) ...``."""
    runs = _runs(result)
    r = runs[0]
    seeds = f", seeds {','.join(str(x.seed) for x in runs)}" if len(runs) > 1 else f", seed {r.seed}"
    tuned = r.config.get("tune")
    tuning = f", tuned by mer tune ({tuned['trials']} trials x {tuned['inner_folds']} inner folds)" if tuned else ""
    return (f"{r.method}{' (' + r.variant + ')' if r.variant else ''} on {r.dataset}, "
            f"profile {r.config.get('meta', {}).get('profile')}, overrides: {overrides_text(r)}{tuning}{seeds}")


def compare(a: RunResult | SeedsResult, b: RunResult | SeedsResult, *, resamples: int | None = None,
            permutations: int = DEFAULT_PERMUTATIONS, seed: int | None = None) -> Comparison:
    """B minus A, pooled and per corpus; a :class:`CompareError` for runs over different samples.

    ``resamples`` and ``seed`` default to A's ``evaluation.bootstrap`` settings.
    """
    runs_a, runs_b = _runs(a), _runs(b)
    first_a, first_b = runs_a[0], runs_b[0]
    if first_a.task != first_b.task or first_a.class_names != first_b.class_names:
        raise CompareError(f"A is task {first_a.task} {list(first_a.class_names)}, B task {first_b.task} "
                           f"{list(first_b.class_names)}: compare runs of the same task")
    diff = differing_samples(first_a.predictions(), first_b.predictions())
    if diff:
        raise CompareError(f"A and B are runs over different samples: {diff}")
    if len(runs_a) != len(runs_b):
        raise CompareError(f"A has {len(runs_a)} seed(s), B {len(runs_b)}: compare results with as many seeds")
    boot = first_a.bootstrap
    resamples = boot["resamples"] if resamples is None else resamples
    seed = boot["seed"] if seed is None else seed
    datasets = first_a.datasets
    parts: dict[str | None, str] = {None: "all" if len(datasets) > 1 else datasets[0]}
    if len(datasets) > 1:
        parts.update({d: d for d in datasets})
    out, per_seed, samples, subjects = {}, {}, {}, {}
    for dataset, name in parts.items():
        try:
            labels, preds, groups = stacked_predictions([*runs_a, *runs_b], dataset)
        except ValueError as exc:
            raise CompareError(f"A and B: {exc}") from None
        k = len(runs_a)
        out[name] = paired_differences(labels, preds[:k], preds[k:], groups, len(first_a.class_names),
                                       resamples=resamples, permutations=permutations, seed=seed)
        n_classes = len(first_a.class_names)
        pairs = [(scores(labels, preds[i], n_classes), scores(labels, preds[k + i], n_classes)) for i in range(k)]
        per_seed[name] = {m: [getattr(sb, m) - getattr(sa, m) for sa, sb in pairs] for m in ("uf1", "uar")}
        samples[name], subjects[name] = len(labels), len(set(groups))
    return Comparison(describe(a), describe(b), len(runs_a), out, per_seed, samples, subjects, resamples,
                      permutations, seed)


def comparison_rows(cmp: Comparison) -> list[list[Any]]:
    """One row per part: n, subjects, then per metric A, B, B - A, its interval and p."""
    rows = []
    for part, diffs in cmp.parts.items():
        row: list[Any] = [part, cmp.samples[part], cmp.subjects[part]]
        for name in ("uf1", "uar"):
            d = diffs[name]
            row += [f"{d.a:.4f}", f"{d.b:.4f}", f"{d.delta:+.4f}", f"[{d.interval.low:+.3f}, {d.interval.high:+.3f}]",
                    f"{d.p_value:.4f}"]
        rows.append(row)
    return rows


HEADER = ["part", "n", "subjects", "UF1 A", "UF1 B", "UF1 B-A", "95% CI", "p", "UAR A", "UAR B", "UAR B-A",
          "95% CI", "p"]


def seed_lines(cmp: Comparison) -> list[str]:
    """With several seeds: B - A of each seed pair, and their mean +- std (the seed-to-seed spread
    the subject bootstrap of the seed means does not show)."""
    if cmp.seeds < 2:
        return []
    lines = []
    for part, metrics in cmp.per_seed.items():
        for name, values in metrics.items():
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
            lines.append(f"{part} {name.upper()} B - A per seed pair: {', '.join(f'{v:+.4f}' for v in values)} "
                         f"(mean {mean:+.4f} +- {std:.4f} std)")
    return lines


def explanation(cmp: Comparison) -> str:
    what = "seed means" if cmp.seeds > 1 else "pooled figures"
    return (f"B - A of the {what}. {int(LEVEL * 100)}% CI: paired percentile bootstrap over subjects "
            f"({cmp.resamples} resamples, seed {cmp.seed}); p: two-sided permutation test swapping each subject's "
            f"A and B predictions ({cmp.permutations} permutations, p = (1 + extreme) / (1 + permutations)).")


def comparison_markdown(cmp: Comparison) -> str:
    lines = [f"A: {cmp.label_a}", f"B: {cmp.label_b}", "",
             "| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * (len(HEADER) - 1)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in comparison_rows(cmp)]
    lines += ["", *seed_lines(cmp), explanation(cmp)]
    return "\n".join(lines)


def comparison_section(cmp: Comparison) -> Any:
    """The comparison as a report section (``mer report --compare``)."""
    from .reporting.html import Section

    section = Section("Paired comparison")
    section.text(f"A: {cmp.label_a}. B: {cmp.label_b}.")
    section.table(HEADER, comparison_rows(cmp), "B - A, paired over the same samples")
    for line in seed_lines(cmp):
        section.text(line)
    section.text(explanation(cmp))
    return section
