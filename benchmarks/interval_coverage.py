"""Coverage of the subject-level intervals printed with every LOSO result. Writes ``interval_coverage.{json,md}``.

mercore (``mercore.evaluation.statistics.bootstrap_intervals``) reports a 95 % percentile bootstrap
interval of the pooled UF1 and UAR, resampling subjects with replacement. This simulation measures
how often such an interval contains the true population value, with 16 subjects (SMIC-like) and 68
subjects (MEGC2019-composite-like), and compares it with two standard alternatives computed on the
same studies (and, for BCa, the same bootstrap resamples):

* ``percentile``: percentile bootstrap over subjects, as mercore computes it now;
* ``bca``: bias-corrected and accelerated bootstrap (acceleration from the leave-one-subject-out
  jackknife of the pooled statistic);
* ``jackknife_t``: estimate +- t(0.975, S-1) x leave-one-subject-out jackknife standard error.

A study draws S subjects from a population model (per-subject clip count, class mix and classifier
accuracy; see ``PopulationModel``); the true value is the pooled UF1/UAR of ``--truth-subjects``
subjects of the same model. The script also reports the chance baseline of the composite-like
scenario (labels permuted against predictions; uniform random guessing). Fixed seeds: the run
repeats exactly.

    python benchmarks/interval_coverage.py [--studies 2000] [--resamples 2000] [--out-dir benchmarks]
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.special import expit, ndtr, ndtri

from mercore.evaluation.statistics import (LEVEL, METRIC_NAMES, bootstrap_intervals, subject_confusions,
                                           subject_weights, uf1_uar)
from mercore.io import atomic_write_text

HERE = Path(__file__).resolve().parent
SEED = 20240611
CLASSES = ("negative", "positive", "surprise")
METHODS = ("percentile", "bca", "jackknife_t")
TARGET_UF1 = 0.65
CHUNK = 25  # studies per vectorised block: (CHUNK, resamples, S) subject counts in memory at once


@dataclass(frozen=True)
class PopulationModel:
    """How one subject is drawn.

    * clip count: ``1 + Poisson(poisson_mean)`` (SMIC-like), or a negative binomial shape
      ``NB(k - 1; nb_shape, p)`` truncated to ``1..max_clips`` with ``p`` solved so the mean is
      ``mean_clips`` (composite-like);
    * class mix: ``Dirichlet(concentration * class_freq)``, clip labels multinomial from it;
    * classifier: a clip of class t is predicted correctly with probability
      ``expit(mu0 + class_offset[t] + b)``, ``b ~ N(0, subject_sd**2)`` one per subject (subjects
      differ in difficulty); a wrong prediction goes to the other classes with the fixed
      proportions ``error_split[t]`` (asymmetric, more errors towards the majority class).
      ``mu0`` is solved so that the population UF1 is ``TARGET_UF1``.
    """

    name: str
    subjects: int
    class_totals: tuple[int, int, int]
    mean_clips: float
    max_clips: int
    poisson: bool
    nb_shape: float = 1.5
    concentration: float = 5.0
    subject_sd: float = 1.0
    class_offset: tuple[float, float, float] = (0.0, -0.4, 0.3)
    error_split: tuple[tuple[float, float, float], ...] = ((0.0, 0.55, 0.45), (0.70, 0.0, 0.30), (0.60, 0.40, 0.0))

    @property
    def class_freq(self) -> np.ndarray:
        totals = np.asarray(self.class_totals, dtype=float)
        return totals / totals.sum()


SCENARIOS = (
    PopulationModel("smic_like", 16, (70, 51, 43), mean_clips=164 / 16, max_clips=10**6, poisson=True),
    PopulationModel("composite_like", 68, (250, 109, 83), mean_clips=442 / 68, max_clips=20, poisson=False),
)


def clip_count_pmf(model: PopulationModel) -> tuple[np.ndarray, np.ndarray]:
    """(k, pmf) of the per-subject clip count (composite-like only; SMIC-like is drawn as Poisson)."""
    k = np.arange(1, model.max_clips + 1)

    def pmf(p: float) -> np.ndarray:
        w = stats.nbinom.pmf(k - 1, model.nb_shape, p)
        return w / w.sum()

    lo, hi = 1e-6, 1 - 1e-6  # mean decreases in p
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (k * pmf(mid)).sum() > model.mean_clips else (lo, mid)
    return k, pmf((lo + hi) / 2)


def error_matrix(model: PopulationModel, correct: np.ndarray) -> np.ndarray:
    """``(..., C, C)`` prediction probabilities given the per-class probability ``correct (..., C)``."""
    split = np.asarray(model.error_split)
    eye = np.eye(len(CLASSES))
    return correct[..., :, None] * eye + (1 - correct)[..., :, None] * split


def population_confusion(model: PopulationModel, mu0: float, nodes: int = 80) -> np.ndarray:
    """Expected pooled confusion per clip of an infinite population (Gauss-Hermite over ``b``).

    Clip count, class mix and difficulty are independent, so the pooled confusion is proportional
    to ``class_freq[t] * E_b[P(pred p | class t, b)]``.
    """
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    correct = expit(mu0 + np.asarray(model.class_offset) + model.subject_sd * x[:, None])  # (nodes, C)
    expected = np.einsum("n,ntp->tp", w, error_matrix(model, correct))
    return model.class_freq[:, None] * expected


def solve_mu0(model: PopulationModel, target: float = TARGET_UF1) -> float:
    """Base logit of a correct prediction giving population UF1 ``target``."""
    lo, hi = -5.0, 5.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(uf1_uar(population_confusion(model, mid))[0]) < target else (lo, mid)
    return (lo + hi) / 2


def draw_subjects(model: PopulationModel, mu0: float, shape: tuple[int, ...],
                  rng: np.random.Generator) -> np.ndarray:
    """``(*shape, C, C)`` per-subject confusion counts of ``prod(shape)`` independent subjects."""
    if model.poisson:
        clips = 1 + rng.poisson(model.mean_clips - 1, size=shape)
    else:
        k, pmf = clip_count_pmf(model)
        clips = rng.choice(k, size=shape, p=pmf)
    mix = rng.dirichlet(model.concentration * model.class_freq, size=shape)
    labels = rng.multinomial(clips, mix)  # (*shape, C)
    b = rng.normal(0.0, model.subject_sd, size=shape)
    correct = expit(mu0 + np.asarray(model.class_offset) + b[..., None])
    return rng.multinomial(labels, error_matrix(model, correct)).astype(np.int64)


def sorted_quantile(sorted_values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise quantiles of ``sorted_values (n, B)`` at per-row ``q (n,)``; numpy's 'linear' rule."""
    pos = np.clip(q, 0.0, 1.0) * (sorted_values.shape[1] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, sorted_values.shape[1] - 1)
    rows = np.arange(sorted_values.shape[0])
    frac = pos - lo
    return sorted_values[rows, lo] + frac * (sorted_values[rows, hi] - sorted_values[rows, lo])


def study_intervals(counts: np.ndarray, weights: np.ndarray, level: float = LEVEL) -> dict[str, dict[str, np.ndarray]]:
    """Point estimates and the three intervals for a block of studies.

    ``counts (n, S, C, C)``: per-subject confusions of n studies; ``weights (n, B, S)``: bootstrap
    subject counts. Returns ``{metric: {"estimate", "<method>_low", "<method>_high", "boot_sd",
    "jack_se"}}``, each ``(n,)``.
    """
    n, s = counts.shape[:2]
    total = counts.sum(axis=1)
    est = uf1_uar(total)
    boot = uf1_uar(np.einsum("nrg,ngtp->nrtp", weights, counts))  # 2 x (n, B)
    loo = uf1_uar(total[:, None] - counts)  # 2 x (n, S)
    tail = (1 - level) / 2
    z_tails = ndtri(np.array([tail, 1 - tail]))
    t_crit = stats.t.ppf(1 - tail, s - 1)
    resamples = weights.shape[1]
    out = {}
    for name, e, bv, jv in zip(METRIC_NAMES, est, boot, loo):
        sv = np.sort(bv, axis=1)
        row = {"estimate": e, "boot_sd": bv.std(axis=1, ddof=1)}
        row["percentile_low"] = sorted_quantile(sv, np.full(n, tail))
        row["percentile_high"] = sorted_quantile(sv, np.full(n, 1 - tail))
        # BCa: z0 from the share of resamples below the estimate (ties count half), acceleration
        # from the jackknife skewness
        share = ((bv < e[:, None]).sum(axis=1) + 0.5 * (bv == e[:, None]).sum(axis=1)) / resamples
        z0 = ndtri(np.clip(share, 0.5 / resamples, 1 - 0.5 / resamples))
        d = jv.mean(axis=1, keepdims=True) - jv
        ss = (d ** 2).sum(axis=1)
        accel = np.divide((d ** 3).sum(axis=1), 6 * ss ** 1.5, out=np.zeros(n), where=ss > 0)
        for side, z in zip(("low", "high"), z_tails):
            q = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
            row[f"bca_{side}"] = sorted_quantile(sv, q)
        se = np.sqrt((s - 1) / s * ss)
        row["jack_se"] = se
        row["jackknife_t_low"] = e - t_crit * se
        row["jackknife_t_high"] = e + t_crit * se
        out[name] = row
    return out


def summarise(rows: dict[str, np.ndarray], truth: float) -> dict:
    """Coverage (with binomial SE), miss rates and mean widths of one metric over all studies."""
    n = len(rows["estimate"])
    out = {"studies": n, "truth": truth, "estimate_mean": float(rows["estimate"].mean()),
           "estimate_sd": float(rows["estimate"].std(ddof=1)),
           "bias": float(rows["estimate"].mean() - truth),
           "bootstrap_sd_mean": float(rows["boot_sd"].mean()),
           "jackknife_se_mean": float(rows["jack_se"].mean()), "methods": {}}
    for method in METHODS:
        low, high = rows[f"{method}_low"], rows[f"{method}_high"]
        cover = (low <= truth) & (truth <= high)
        c = float(cover.mean())
        out["methods"][method] = {
            "coverage": c, "coverage_se": float(np.sqrt(c * (1 - c) / n)),
            "miss_interval_below_truth": float((high < truth).mean()),  # upper end < truth
            "miss_interval_above_truth": float((low > truth).mean()),   # lower end > truth
            "mean_width": float((high - low).mean()),
        }
    return out


def check_against_mercore(counts: np.ndarray, weights_seed: int, resamples: int, ours: dict) -> float:
    """Largest |difference| between our percentile ends and ``bootstrap_intervals`` on one study."""
    y_true, y_pred, groups = [], [], []
    for g, m in enumerate(counts):
        for t in range(m.shape[0]):
            for p in range(m.shape[1]):
                y_true += [t] * int(m[t, p])
                y_pred += [p] * int(m[t, p])
                groups += [f"s{g:04d}"] * int(m[t, p])
    _, rebuilt = subject_confusions(y_true, y_pred, groups, len(CLASSES))
    assert np.array_equal(rebuilt, counts)
    ref = bootstrap_intervals(y_true, y_pred, groups, len(CLASSES), resamples=resamples, seed=weights_seed)
    return max(abs(ref[m].low - float(ours[m]["percentile_low"][0])) + abs(ref[m].high - float(ours[m]["percentile_high"][0]))
               for m in METRIC_NAMES)


def check_bca_against_scipy(counts: np.ndarray, resamples: int, seed: int) -> dict[str, float]:
    """Our BCa vs ``scipy.stats.bootstrap(method='BCa')`` on one study, both with many resamples
    (they draw different resamples, so they agree to Monte Carlo error only)."""
    s = counts.shape[0]
    rng = np.random.default_rng(seed)
    w = subject_weights(s, resamples, rng)
    ours = study_intervals(counts[None], w[None])
    diffs = {}
    for i, name in enumerate(METRIC_NAMES):
        def statistic(idx: np.ndarray, axis: int = -1, _i: int = i) -> np.ndarray:
            return uf1_uar(counts[np.asarray(idx, dtype=np.int64)].sum(axis=-3))[_i]

        res = stats.bootstrap((np.arange(s),), statistic, vectorized=True, method="BCa",
                              n_resamples=resamples, confidence_level=LEVEL, rng=rng)
        ci = res.confidence_interval
        diffs[name] = max(abs(ci.low - float(ours[name]["bca_low"][0])), abs(ci.high - float(ours[name]["bca_high"][0])))
    return diffs


def chance_baseline(counts: np.ndarray, permutations: int, rng: np.random.Generator) -> dict:
    """UF1/UAR of each study's predictions permuted against its labels, and of uniform guessing."""
    perm, unif = [], []
    third = np.full(len(CLASSES), 1 / len(CLASSES))
    for study in counts:
        m = study.sum(axis=0)
        t_idx, p_idx = np.nonzero(m)
        reps = m[t_idx, p_idx]
        y_true, y_pred = np.repeat(t_idx, reps), np.repeat(p_idx, reps)
        shuffled = rng.permuted(np.tile(y_pred, (permutations, 1)), axis=1)
        cell = np.arange(permutations)[:, None] * 9 + 3 * y_true[None] + shuffled
        perm.append(np.bincount(cell.ravel(), minlength=permutations * 9).reshape(permutations, 3, 3))
        unif.append(np.stack([rng.multinomial(n_t, third, size=permutations) for n_t in m.sum(axis=1)], axis=1))
    out = {}
    for kind, mats in (("labels_permuted", np.concatenate(perm)), ("uniform_guess", np.concatenate(unif))):
        uf1, uar = uf1_uar(mats)
        out[kind] = {"draws": int(len(uf1))}
        for name, v in (("uf1", uf1), ("uar", uar)):
            out[kind][name] = {"mean": float(v.mean()), "p95": float(np.percentile(v, 95)), "sd": float(v.std(ddof=1))}
    return out


def run_scenario(k: int, model: PopulationModel, studies: int, resamples: int, truth_subjects: int,
                 permutations: int) -> dict:
    t0 = time.perf_counter()
    data_ss, truth_ss, chance_ss, check_ss = np.random.SeedSequence([SEED, k]).spawn(4)
    mu0 = solve_mu0(model)
    analytic = [float(v) for v in uf1_uar(population_confusion(model, mu0))]
    big = draw_subjects(model, mu0, (truth_subjects,), np.random.default_rng(truth_ss))
    truth = [float(v) for v in uf1_uar(big.sum(axis=0))]
    clips = big.sum(axis=(1, 2))
    del big

    counts = draw_subjects(model, mu0, (studies, model.subjects), np.random.default_rng(data_ss))
    boot_seeds = SEED + 100_000 * (k + 1) + np.arange(studies)  # study i's bootstrap: default_rng(boot_seeds[i])
    blocks = []
    for start in range(0, studies, CHUNK):
        stop = min(start + CHUNK, studies)
        w = np.stack([subject_weights(model.subjects, resamples, np.random.default_rng(int(sd)))
                      for sd in boot_seeds[start:stop]])
        blocks.append(study_intervals(counts[start:stop], w))
    rows = {m: {key: np.concatenate([b[m][key] for b in blocks]) for key in blocks[0][m]} for m in METRIC_NAMES}

    mercore_diff = check_against_mercore(counts[0], int(boot_seeds[0]), resamples,
                                         {m: {key: v[:1] for key, v in rows[m].items()} for m in METRIC_NAMES})
    scipy_diff = check_bca_against_scipy(counts[0], 20_000, int(check_ss.generate_state(1)[0]))
    clips_per_study = counts.sum(axis=(2, 3)).sum(axis=1)
    result = {
        "model": {**asdict(model), "mu0": mu0, "class_freq": model.class_freq.tolist()},
        "population": {"truth_subjects": truth_subjects, "uf1": truth[0], "uar": truth[1],
                       "uf1_analytic": analytic[0], "uar_analytic": analytic[1],
                       "clips_per_subject_mean": float(clips.mean()), "clips_per_subject_min": int(clips.min()),
                       "clips_per_subject_max": int(clips.max()),
                       "clips_per_subject_p99": float(np.percentile(clips, 99))},
        "studies": {"count": studies, "subjects": model.subjects, "resamples": resamples,
                    "clips_mean": float(clips_per_study.mean()), "clips_sd": float(clips_per_study.std(ddof=1)),
                    "class_totals_mean": counts.sum(axis=(1, 3)).mean(axis=0).tolist()},
        "metrics": {m: summarise(rows[m], truth[i]) for i, m in enumerate(METRIC_NAMES)},
        "checks": {"coverage_against_quadrature_truth": {
                       m: {meth: v["coverage"] for meth, v in summarise(rows[m], analytic[i])["methods"].items()}
                       for i, m in enumerate(METRIC_NAMES)},
                   "percentile_vs_bootstrap_intervals_max_abs_diff": mercore_diff,
                   "bca_vs_scipy_20000_resamples_max_abs_diff": scipy_diff},
    }
    if model.name == "composite_like":
        result["chance"] = chance_baseline(counts, permutations, np.random.default_rng(chance_ss))
    result["seconds"] = time.perf_counter() - t0
    return result


def write_markdown(summary: dict, path: Path) -> None:
    sc = summary["scenarios"]
    lines = ["# Coverage of subject-level 95 % intervals (simulation)", "",
             f"`python benchmarks/interval_coverage.py` (seed {summary['seed']}, {summary['seconds']:.0f} s wall time). "
             "All numbers: `interval_coverage.json`.", "",
             "## Model", "",
             "Each simulated study draws S independent subjects from a population model and pools their "
             "predictions into one 3-class confusion matrix (negative / positive / surprise), as a LOSO result does. "
             "A subject has",
             "", "* its own clip count: SMIC-like `1 + Poisson(9.25)` (mean 10.25, 164 clips for 16 subjects on "
             "average); composite-like a negative-binomial shape (`NB(k-1; r=1.5, p)`) truncated to 1..20, `p` "
             "solved for mean 6.5 (442 clips for 68 subjects on average), so many subjects have 1-4 clips and a few ~20;",
             "* its own class mix: `Dirichlet(5 x corpus class frequencies)` (SMIC 70/51/43, composite 250/109/83), "
             "so some subjects lack a class;",
             "* its own difficulty: a clip of class t is correct with probability `expit(mu0 + offset_t + b)`, "
             "`b ~ N(0, 1)` per subject, offsets (0, -0.4, +0.3) for negative/positive/surprise; wrong predictions "
             "go to the two other classes in fixed, asymmetric proportions (negative -> 0.55 pos / 0.45 sur, "
             "positive -> 0.70 neg / 0.30 sur, surprise -> 0.60 neg / 0.40 pos). "
             f"`mu0` is solved so the population UF1 is {TARGET_UF1}.",
             "", "Clip count, class mix and difficulty are drawn independently. The true value is the pooled UF1 / UAR "
             f"of {summary['truth_subjects']} subjects of the same model (checked against the infinite-population value "
             "by quadrature). Per study: percentile bootstrap (mercore's `subject_weights`, same seed rule as "
             f"`bootstrap_intervals`, {summary['resamples']} resamples), BCa on the same resamples (z0 from the share of "
             "resamples below the estimate, acceleration from the leave-one-subject-out jackknife), and "
             "estimate ± t(0.975, S-1) × jackknife SE. Miss columns: share of studies whose interval lies wholly "
             "below (upper end < truth) or wholly above (lower end > truth) the true value.", ""]
    for name, r in sc.items():
        p = r["population"]
        lines.append(f"* **{name}** (S = {r['studies']['subjects']}): mu0 = {r['model']['mu0']:.3f}; true UF1 "
                     f"{p['uf1']:.4f} (quadrature {p['uf1_analytic']:.4f}), true UAR {p['uar']:.4f} "
                     f"(quadrature {p['uar_analytic']:.4f}); clips/subject mean {p['clips_per_subject_mean']:.2f}, "
                     f"range {p['clips_per_subject_min']}-{p['clips_per_subject_max']}; clips per study "
                     f"{r['studies']['clips_mean']:.1f} ± {r['studies']['clips_sd']:.1f}.")
    lines += ["", "## Coverage", "",
              "| scenario | S | metric | interval | coverage ± SE | interval below truth | interval above truth | mean width |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in sc.items():
        for metric in METRIC_NAMES:
            for method in METHODS:
                m = r["metrics"][metric]["methods"][method]
                lines.append(f"| {name} | {r['studies']['subjects']} | {metric.upper()} | {method} | "
                             f"{100 * m['coverage']:.1f} % ± {100 * m['coverage_se']:.1f} | "
                             f"{100 * m['miss_interval_below_truth']:.1f} % | {100 * m['miss_interval_above_truth']:.1f} % | "
                             f"{m['mean_width']:.3f} |")
    lines += ["", f"Studies per scenario: {summary['studies']}. Point estimate over studies (mean − truth; SD of the "
              "estimate vs mean bootstrap SD / mean jackknife SE):", ""]
    for name, r in sc.items():
        for metric in METRIC_NAMES:
            x = r["metrics"][metric]
            lines.append(f"* {name} {metric.upper()}: bias {x['bias']:+.4f}; SD {x['estimate_sd']:.4f} vs bootstrap "
                         f"{x['bootstrap_sd_mean']:.4f} / jackknife {x['jackknife_se_mean']:.4f}")
    ch = sc["composite_like"].get("chance")
    if ch:
        lines += ["", "## Chance baseline (composite-like studies, 68 subjects)", "",
                  "| predictor | draws | UF1 mean | UF1 95th pct | UAR mean | UAR 95th pct |", "|---|---|---|---|---|---|"]
        for kind, label in (("labels_permuted", "study's predictions permuted against its labels"),
                            ("uniform_guess", "uniform random guess")):
            c = ch[kind]
            lines.append(f"| {label} | {c['draws']} | {c['uf1']['mean']:.3f} | {c['uf1']['p95']:.3f} | "
                         f"{c['uar']['mean']:.3f} | {c['uar']['p95']:.3f} |")
    lines += ["", "## Checks", ""]
    for name, r in sc.items():
        c = r["checks"]
        lines.append(f"* {name}: percentile ends vs `bootstrap_intervals` on study 0, max |diff| "
                     f"{c['percentile_vs_bootstrap_intervals_max_abs_diff']:.2e}; BCa vs `scipy.stats.bootstrap(method='BCa')` "
                     f"(20000 resamples each, different draws) max |diff| UF1 "
                     f"{c['bca_vs_scipy_20000_resamples_max_abs_diff']['uf1']:.4f}, UAR "
                     f"{c['bca_vs_scipy_20000_resamples_max_abs_diff']['uar']:.4f}. Coverage with the quadrature "
                     "value as the truth: " + "; ".join(
                         f"{m.upper()} " + ", ".join(f"{meth} {100 * v:.1f} %" for meth, v in c["coverage_against_quadrature_truth"][m].items())
                         for m in METRIC_NAMES) + ".")
    lines += ["", "## Conclusion", "", conclusion(summary)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def conclusion(summary: dict, threshold: float = 0.94) -> str:
    """One paragraph stating, from the measured numbers only, which intervals reach ``threshold``."""
    sc = summary["scenarios"]
    parts = []
    for metric in METRIC_NAMES:
        for method in METHODS:
            cov = {r["studies"]["subjects"]: r["metrics"][metric]["methods"][method]["coverage"] for r in sc.values()}
            txt = ", ".join(f"{100 * c:.1f} % at S = {s}" for s, c in cov.items())
            parts.append((metric, method, cov, txt))
    sentences = [f"{metric.upper()} {method}: {txt}." for metric, method, _, txt in parts]
    both = sorted({method for method in METHODS
                   if all(c >= threshold for metric, m, cov, _ in parts if m == method for c in cov.values())})
    per_s = {}
    for r in sc.values():
        s = r["studies"]["subjects"]
        per_s[s] = [method for method in METHODS
                    if all(r["metrics"][metric]["methods"][method]["coverage"] >= threshold for metric in METRIC_NAMES)]
    reach = "; ".join(f"at S = {s}: {', '.join(m) if m else 'none'}" for s, m in per_s.items())
    verdict = (f"Intervals at or above {100 * threshold:.0f} % for both UF1 and UAR — {reach}. "
               + (f"At both S: {', '.join(both)}." if both else "No interval reaches it at both S for both metrics."))
    max_se = max(m["coverage_se"] for r in sc.values() for x in r["metrics"].values() for m in x["methods"].values())
    return (f"Measured coverage of the nominal 95 % intervals ({summary['studies']} studies per scenario, binomial SE "
            f"at most {100 * max_se:.1f} points): " + " ".join(sentences) + " " + verdict
            + " These figures hold for this population model; they say nothing about real corpora beyond it.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=2000, help="simulated studies per scenario")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per study")
    parser.add_argument("--truth-subjects", type=int, default=200_000, help="subjects for the true value")
    parser.add_argument("--permutations", type=int, default=20, help="label permutations per composite-like study")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    t0 = time.perf_counter()
    scenarios = {}
    for k, model in enumerate(SCENARIOS):
        scenarios[model.name] = run_scenario(k, model, args.studies, args.resamples, args.truth_subjects,
                                             args.permutations)
        print(json.dumps({model.name: {m: {meth: round(v["coverage"], 4) for meth, v in x["methods"].items()}
                                       for m, x in scenarios[model.name]["metrics"].items()},
                          "seconds": round(scenarios[model.name]["seconds"], 1)}), flush=True)
    summary = {"seed": SEED, "level": LEVEL, "studies": args.studies, "resamples": args.resamples,
               "truth_subjects": args.truth_subjects, "permutations": args.permutations,
               "methods": list(METHODS), "scenarios": scenarios, "seconds": time.perf_counter() - t0}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "interval_coverage.json", json.dumps(summary, indent=1) + "\n")
    write_markdown(summary, args.out_dir / "interval_coverage.md")
    print(f"wrote {args.out_dir / 'interval_coverage.json'} and .md in {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
