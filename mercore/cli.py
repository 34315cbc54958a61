"""The ``mer`` command line. Heavy imports (torch, mlflow) happen inside commands, so
``mer --help`` and ``mer plugins`` stay fast."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import click

from .spec import EXECUTORS

EXIT_USAGE = 2
_Command = TypeVar("_Command", bound=Callable[..., Any])


class _BadOption(click.ClickException):
    """Bad input (a config value, an option, a file given): one line, and the usage exit code (as
    click's own checks)."""

    exit_code = EXIT_USAGE


def _fail(exc: BaseException, *, bad_input: bool = False) -> None:
    """One error line: exit 2 for bad input -- a config value or option (ConfigError), a name that is
    not registered, or with ``bad_input`` whatever the command reads from what the user named (a run
    folder) -- and exit 1 for the rest, a broken environment."""
    from .config import ConfigError
    from .plugins import UnknownNameError

    usage = bad_input or isinstance(exc, (ConfigError, UnknownNameError))
    raise (_BadOption if usage else click.ClickException)(str(exc)) from exc


@contextmanager
def _stopped_or_failed() -> Iterator[None]:
    """The work of `mer run` and `mer tune`: a signal stops it with the shell's exit status (and
    says what was kept), a known failure is one error line instead of a traceback."""
    from .config import ConfigError
    from .data.dataset import DatasetError
    from .features.store import FeatureError
    from .interrupt import Interrupted, stop_on_signals
    from .plugins import PluginError, UnknownNameError

    with stop_on_signals():
        try:
            yield
        except Interrupted as exc:
            click.echo(f"\nstopped by {exc}: {exc.note}" if exc.note else f"\nstopped by {exc}", err=True)
            raise SystemExit(exc.exit_code) from None
        except (ConfigError, DatasetError, FeatureError, PluginError, UnknownNameError, FileNotFoundError,
                RuntimeError) as exc:
            _fail(exc)
        except OSError as exc:  # a full disk, a read-only or misnamed folder, an unreadable file
            from .storage import storage_message

            _fail(OSError(storage_message(exc)))


def _parse_workers(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    """``--workers``: a count of fold processes, or ``auto`` (checked by the LOSO evaluator's rule)."""
    from .spec import check_workers

    try:
        return check_workers(int(value) if value.isdigit() else value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _parse_seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> int | list[int] | None:
    """``--seeds``: a count (``3``: the three seeds from run.seed on) or a list (``0,4,7``)."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) > 1 and not all(p.strip() for p in parts):
        what = "has an empty entry" if any(p.strip() for p in parts) else "is empty"
        raise click.BadParameter(f"{value!r}: the list of seeds {what}; give a count such as 3 or a list such as "
                                 "0,1,2")
    try:
        return [int(v) for v in value.split(",")] if "," in value else int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a count such as 3 or a list such as 0,1,2") from None


def _work_options(*, tracking: str, cache_dir: str, fresh: str, workers: str) -> Callable[[_Command], _Command]:
    """``--tracking`` to ``--workers``, the options `mer run` and `mer tune` share, so that their
    defaults cannot drift apart; each command says in the help what they mean for it."""
    options = [
        click.option("--tracking/--no-tracking", default=True, show_default=True, help=tracking),
        click.option("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlflow.db, artifacts in ./mlruns/)."),
        click.option("--experiment", default="mer", show_default=True, help="MLflow experiment name."),
        click.option("--cache-dir", type=click.Path(path_type=Path), default=Path(".mer"), show_default=True,
                     help=cache_dir),
        click.option("--fresh", is_flag=True, help=fresh),
        click.option("--workers", default="auto", show_default=True, callback=_parse_workers, help=workers),
    ]

    def apply(command: _Command) -> _Command:
        for option in reversed(options):  # the first listed is applied last: it comes first in --help
            command = option(command)
        return command
    return apply


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mercore")
def cli() -> None:
    """mer: leave-one-subject-out evaluation of micro-expression recognition methods."""


@cli.command()
@click.option("--plugin", "-p", "plugin", required=True, help="Method to run (see `mer plugins`).")
@click.option("--variant", "-v", default=None, help="Method variant (e.g. c or p for mpfnet).")
@click.option("--dataset", "-d", default="synthetic", show_default=True, help="Dataset (see `mer datasets`).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder holding the corpus as distributed (not needed for synthetic).")
@click.option("--task", default=None, help="Label task, e.g. megc3 or sde5 (dataset default otherwise).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML overrides.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one config value (repeatable).")
@click.option("--profile", default=None,
              help="Config profile: `paper` (the paper's setup) or a method's named profile such as `quick`. "
                   "Default: quick on the synthetic corpus and on a CPU, paper on a GPU.")
@click.option("--subjects", multiple=True, help="Restrict LOSO to these subjects (repeatable).")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N.")
@click.option("--dataset-option", "-D", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Adapter option, e.g. -D subjects=8 for the synthetic generator.")
@click.option("--skip-invalid", is_flag=True,
              help="Leave malformed annotation rows out: each is printed (file, row, reason) and listed in "
                   "summary.json, skipped.txt and the MLflow run.")
@_work_options(tracking="Log to MLflow.", cache_dir="Feature cache, synthetic corpus and run folders.",
               fresh="Recompute folds finished by an earlier identical run.",
               workers="Run folds in N processes of cores/N torch threads each; auto: one per CPU core (at most "
                       "4) on CPU, 0 on a GPU. Results equal sequential ones up to thread-count rounding.")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="Where folds run: this machine, or Ray tasks (needs the `ray` extra).")
@click.option("--address", default=None, help="Ray cluster address (default: start a local Ray instance).")
@click.option("--seeds", default=None, callback=_parse_seeds, metavar="N|S1,S2,...",
              help="Run the LOSO once per seed: a count (the N seeds from run.seed on) or a list. Reports each "
                   "seed's UF1/UAR and their mean +- std; folds resume per (seed, fold).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def run(plugin: str, variant: str | None, dataset: str, data_root: Path | None, task: str | None,
        config_file: Path | None, sets: tuple[str, ...], profile: str | None, subjects: tuple[str, ...],
        device: str | None, dataset_options: tuple[str, ...], skip_invalid: bool, tracking: bool,
        tracking_uri: str | None, experiment: str, cache_dir: Path, fresh: bool, workers: int | str, executor: str,
        address: str | None, seeds: int | list[int] | None, quiet: bool) -> None:
    """Run a leave-one-subject-out evaluation of a method (once, or once per seed with --seeds)."""
    from .config import parse_dataset_options
    from .reporting.artifacts import metrics_table, seeds_table
    from .runner import QUICK, load_method, run as run_loso, run_seeds
    from .spec import ExecutionOptions, RunSpec

    with _stopped_or_failed():
        registry, method = load_method(None, plugin)
        spec = RunSpec(method, variant=variant, dataset=dataset, data_root=data_root,
                       dataset_options=parse_dataset_options(dataset_options), task=task, profile=profile,
                       config_file=config_file, overrides=sets, subjects=subjects or None,
                       seeds=tuple(seeds) if isinstance(seeds, list) else seeds,
                       skip_invalid=skip_invalid)
        options = ExecutionOptions(device=device, workers=workers, executor=executor, address=address,
                                   cache_dir=cache_dir, fresh=fresh, progress=not quiet, tracking=tracking,
                                   tracking_uri=tracking_uri, experiment=experiment)

        def announce(config: dict[str, Any]) -> None:  # everything is checked: the work starts
            if config["meta"]["profile"] == QUICK and profile is None:
                click.secho(f"Using the `quick` profile of {plugin} (CPU-sized: fewer epochs, smaller inputs). "
                            f"For the paper's setup: mer run --plugin {plugin} --profile paper", fg="yellow",
                            err=True)

        def skipped(line: str) -> None:
            click.secho(f"skipped: {line}", fg="yellow", err=True)

        def notify(notice: str) -> None:
            click.secho(notice, fg="yellow", err=True)

        if spec.seeds is None:
            result = run_loso(spec, options, registry=registry, on_start=announce, on_skipped=skipped, notify=notify)
        else:
            multi = run_seeds(spec, options, registry=registry, on_start=announce, on_skipped=skipped, notify=notify)
            result = multi.first
    meta = result.config["meta"]
    click.echo(f"\n{result.method}{' (' + result.variant + ')' if result.variant else ''} on {result.dataset} "
               f"[{result.task}], profile {meta['profile']}: LOSO over {len(result.folds)} subjects, "
               f"{meta['samples']} samples (predictions pooled over folds)")
    if seeds is not None:
        reused = sum(r.reused_folds for r in multi.runs)
        if reused:
            click.echo(f"{reused} fold(s) reused from earlier identical runs (--fresh recomputes them)")
        click.echo(seeds_table(multi))
        click.echo(f"\nSeeds folder: {multi.run_dir}")
        for r in multi.runs:
            click.echo(f"  seed {r.seed}: {r.run_dir}")
        if multi.mlflow_run_id:
            click.echo(f"MLflow run: {multi.mlflow_run_id} (the seeds' runs are nested in it)")
        return
    computed = len(result.folds) - result.reused_folds
    if result.reused_folds or set(result.recomputed) - {"not run before"}:
        why = "; ".join(f"{reason} ({n})" for reason, n in result.recomputed.items())
        click.echo(f"{result.reused_folds} fold(s) reused from an earlier identical run (--fresh recomputes them)"
                   + (f"; {computed} computed: {why}" if computed else ""))
    click.echo(metrics_table(result))
    if result.skipped:
        click.echo(f"{len(result.skipped)} annotation row(s) skipped (--skip-invalid), listed above and in "
                   f"{result.run_dir / 'artifacts' / 'skipped.txt'}")
    click.echo(f"\nRun folder: {result.run_dir}")
    if result.mlflow_run_id:
        click.echo(f"MLflow run: {result.mlflow_run_id} (open with: mlflow ui --backend-store-uri "
                   f"{tracking_uri or 'sqlite:///mlflow.db'}; the runs are under Experiments -> {experiment})")


@cli.group(invoke_without_command=True)
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """Method plugins: the registry and what is installed."""
    if ctx.invoked_subcommand is not None:
        return
    from .catalogue import installed_status, read_catalogue

    import shutil
    import textwrap

    catalogue = read_catalogue()
    status = installed_status()
    click.echo(f"{'name':<10} {'status':<14} {'version':<9} {'distribution':<14} paper")
    indent = " " * 51  # the columns before "paper"; titles wrap at word boundaries beneath it
    width = max(40, shutil.get_terminal_size((120, 24)).columns - len(indent))
    for name, entry in catalogue.items():
        st = status.get(name)
        state = "installed" if st and not st.get("error") else ("BROKEN" if st else "not installed")
        paper = entry.get("paper", {})
        lines = textwrap.wrap(f"{paper.get('title', '')} ({paper.get('venue', '')} {paper.get('year', '')})", width,
                              break_long_words=False, break_on_hyphens=False)
        click.echo(f"{name:<10} {state:<14} {(st or {}).get('version') or '-':<9} {entry.get('distribution', '-'):<14} "
                   + f"\n{indent}".join(lines))
    for name, st in status.items():
        if name not in catalogue:
            state = "BROKEN" if st.get("error") else "installed"
            click.echo(f"{name:<10} {state:<14} {st.get('version') or '-':<9} {st.get('distribution') or '-':<14} "
                       "(not in registry.yaml)")
    for name, st in status.items():
        if st.get("error"):
            click.secho(f"plugin {name!r} failed to load: {st['error']}", fg="red", err=True)


@plugins.command("info")
@click.argument("name")
def plugins_info(name: str) -> None:
    """Everything the registry and the installed plugin say about NAME."""
    import yaml

    from .catalogue import installed_status, read_catalogue
    from .plugins import UnknownNameError

    catalogue = read_catalogue()
    status = installed_status()
    if name not in catalogue and name not in status:
        _fail(UnknownNameError(f"unknown plugin {name!r}; choose one of: "
                               f"{', '.join(sorted(set(catalogue) | set(status)))}"))
    click.echo(yaml.safe_dump({name: {**catalogue.get(name, {}), "installed": status.get(name)}}, sort_keys=False))


@cli.command("config")
@click.option("--plugin", "-p", "plugin", required=True, help="Method (see `mer plugins`).")
@click.option("--variant", "-v", default=None, help="Method variant.")
@click.option("--profile", default=None, help="Config profile (default as for `mer run`: quick on the synthetic "
                                               "corpus and on a CPU, paper on a GPU).")
@click.option("--dataset", "-d", default="synthetic", show_default=True, help="Dataset (its input kind and name "
                                                                             "select config sections).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML overrides.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one config value (repeatable).")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N (decides the default profile).")
def config_command(plugin: str, variant: str | None, profile: str | None, dataset: str, config_file: Path | None,
                   sets: tuple[str, ...], device: str | None) -> None:
    """Print the fully resolved config of a run as YAML: what `mer run` with the same options would use."""
    import yaml

    from .config import ConfigError
    from .plugins import PluginError, UnknownNameError
    from .runner import load_method, run_config
    from .spec import RunSpec

    try:
        registry, method = load_method(None, plugin)
        spec = RunSpec(method, variant=variant, dataset=dataset, profile=profile, config_file=config_file,
                       overrides=sets)
        config = run_config(spec, registry, device)
    except (ConfigError, PluginError, UnknownNameError) as exc:
        _fail(exc)
    click.echo(yaml.safe_dump(config, sort_keys=False), nl=False)


@cli.command()
def datasets() -> None:
    """Datasets and their tasks."""
    from .plugins import load_registry

    registry = load_registry()
    for name in registry.list("datasets"):
        ds = registry.dataset(name)
        tasks = ", ".join(f"{t} ({', '.join(ls.classes)})" for t, ls in ds.tasks.items())
        root = "built in" if not ds.requires_root else "needs --data-root"
        click.echo(f"{name:<12} [{registry.datasets[name].plugin}; {ds.kind}; {root}] {ds.description}\n    tasks: {tasks}")


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the corpus into.")
@click.option("--subjects", default=16, show_default=True)
@click.option("--clips-per-subject", default=16, show_default=True)
@click.option("--size", default=128, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--macro", is_flag=True, help="Also write macro-expression clips (for MoExt pre-training).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
def synth(out: Path, subjects: int, clips_per_subject: int, size: int, seed: int, macro: bool, overwrite: bool) -> None:
    """Write the synthetic micro-expression corpus in the CASME II layout."""
    from .data.synthetic import generate
    from .interrupt import Interrupted, stop_on_signals

    with stop_on_signals():  # SIGTERM too unwinds through generate(), which removes its temporary folder
        try:
            path = generate(out, subjects=subjects, clips_per_subject=clips_per_subject, size=size, seed=seed,
                            macro=macro, overwrite=overwrite)
        except Interrupted as exc:
            click.echo(f"\nstopped by {exc}: nothing written to {out}", err=True)
            raise SystemExit(exc.exit_code) from None
        except OSError as exc:  # the generator's own (a non-empty --out) has no errno; a full disk, a file for a folder
            from .storage import storage_message

            _fail(exc if exc.errno is None else OSError(storage_message(exc, folder="--out",
                                                                        kept="nothing half-written is left")))
        except ValueError as exc:  # an option out of its bounds
            _fail(exc, bad_input=True)
    click.echo(f"wrote synthetic corpus to {path}; run on it with: mer run --plugin dfrnet --dataset casme2 --data-root {path}")


@cli.command()
@click.option("--plugin", "-p", "plugin", required=True)
@click.option("--variant", "-v", default=None)
@click.option("--profile", default=None, help="Config profile of the model measured (default as for `mer run`: "
                                               "quick on the synthetic corpus and on a CPU).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one config value (repeatable).")
@click.option("--runs", default=30, show_default=True, help="Timed single-sample forward passes.")
@click.option("--threads", default=None, type=int, help="torch CPU threads (default: torch's choice).")
def profile(plugin: str, variant: str | None, profile: str | None, sets: tuple[str, ...], runs: int,
            threads: int | None) -> None:
    """Parameters, FLOPs, median single-sample CPU latency and training speed of a method's model.

    A measurement command, not a config profile: `--profile quick|paper` (here and in `mer run`)
    picks which config the model is built from. Latencies are of this machine under its current load.
    """
    from .config import ConfigError
    from .nn.base import ContractError
    from .plugins import UnknownNameError
    from .profiling import profile_method
    from .spec import RunSpec

    try:
        spec = RunSpec(plugin, variant=variant, profile=profile, overrides=sets)
        report = profile_method(spec, runs=runs, threads=threads, announce=lambda line: click.echo(f"{line} ...", err=True))
    except (ConfigError, UnknownNameError, ContractError) as exc:
        _fail(exc)
    for key, value in report.items():
        click.echo(f"{key:<22} {value}")


def main() -> None:
    """Console-script entry point; plugins may add commands through ``mer_register_commands``."""
    from .plugins import load_registry

    if len(sys.argv) > 1 and sys.argv[1] not in {c for c in cli.commands} and not sys.argv[1].startswith("-"):
        registry = load_registry()
        if registry.manager is not None:
            registry.manager.hook.mer_register_commands(cli=cli)
    cli()


@plugins.command("install")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Print the pip command instead of running it.")
def plugins_install(name: str, dry_run: bool) -> None:
    """Install plugin NAME from registry.yaml (editable from this repository when its source is here)."""
    import shlex
    import subprocess

    from .install import InstallError, install

    try:
        command = install(name, dry_run=dry_run)
    except InstallError as exc:
        _fail(exc)
    except subprocess.CalledProcessError as exc:
        _fail(RuntimeError(f"pip failed (exit {exc.returncode}): {shlex.join(exc.cmd)}"))
    click.echo(shlex.join(command) if dry_run else f"installed {name}; check with: mer plugins")


@cli.command("new-plugin")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Folder to create the plugin folder mer-NAME in.")
def new_plugin(name: str, out: Path) -> None:
    """Create a working plugin package mer-NAME (a shallow 3-stream CNN on flow maps) to start from."""
    from .scaffold import ScaffoldError, scaffold

    try:
        folder = scaffold(name, out)
    except ScaffoldError as exc:
        _fail(exc)
    click.echo(f"created {folder}\nnext: pip install -e {folder} && mer run --plugin {name} --no-tracking")


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("mer-report"), show_default=True,
              help="Folder for report.html, report.md and their images.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI to look run ids up in.")
@click.option("--compare", "with_compare", is_flag=True,
              help="Add a paired comparison (as `mer compare`) of every later run against the first.")
def report(runs: tuple[str, ...], out: Path, tracking_uri: str | None, with_compare: bool) -> None:
    """Report on RUNS (run folders, --seeds folders or MLflow run ids): metrics with intervals beside
    the paper's, figures, leakage audit."""
    from .compare import CompareError, compare, comparison_section
    from .reporting.html import ReportError, load_result, resolve_run, write_report
    from .tracking import TrackingError

    try:
        results = [load_result(resolve_run(r, tracking_uri)) for r in runs]
        if with_compare and len(results) < 2:
            raise ReportError("--compare needs at least two runs")
        preface = [comparison_section(compare(results[0], r)) for r in results[1:]] if with_compare else []
        paths = write_report(results, out, preface=preface)
    except (ReportError, CompareError) as exc:
        _fail(exc, bad_input=True)
    except TrackingError as exc:  # the store a run id is looked up in
        _fail(exc)
    click.echo(f"wrote {paths[0]} and {paths[1]}")


@cli.command("ensemble")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder of the ensemble (default: .mer/ensembles/ensemble-<dataset>-<members' hash>).")
@click.option("--tracking/--no-tracking", default=True, show_default=True, help="Log the ensemble to MLflow.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlflow.db); also where run ids are looked up.")
@click.option("--experiment", default="mer", show_default=True, help="MLflow experiment name.")
def ensemble_cmd(runs: tuple[str, ...], out: Path | None, tracking: bool, tracking_uri: str | None,
                 experiment: str) -> None:
    """Average the class probabilities of RUNS (run folders, --seeds folders or MLflow run ids: seeds of
    one method or several methods, over the same clips and folds) with equal weights, into a run folder
    that `mer compare` and `mer report` read."""
    from .ensemble import EnsembleError, ensemble, save, with_environment
    from .reporting.artifacts import metrics_table
    from .reporting.html import ReportError, load_result, resolve_run
    from .tracking import TrackingError, make_tracker

    try:
        result = with_environment(ensemble([load_result(resolve_run(r, tracking_uri)) for r in runs], out))
    except (ReportError, EnsembleError) as exc:
        _fail(exc, bad_input=True)
    except TrackingError as exc:  # the store a run id is looked up in
        _fail(exc)
    with _stopped_or_failed():
        tracker = make_tracker(tracking, tracking_uri, experiment)
        members = result.config["ensemble"]["members"]
        with tracker.parent(f"ensemble of {len(members)} {result.dataset} {result.task}", result.config,
                            {"mer.method": "ensemble", "mer.dataset": result.dataset, "mer.task": result.task,
                             "mer.run_dir": str(result.run_dir)}, result.environment):
            artifacts = save(result)
            tracker.log_result(result, artifacts)
    click.echo(f"ensemble of {len(members)} runs ({', '.join(members)}), equal weights\n")
    click.echo(metrics_table(result))
    click.echo(f"\nRun folder: {result.run_dir}")


@cli.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--resamples", type=click.IntRange(min=1), default=None,
              help="Paired bootstrap resamples (default: RUN_A's evaluation.bootstrap.resamples, 2000).")
@click.option("--permutations", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Random subject-wise swaps of A and B for the p-value.")
@click.option("--seed", type=int, default=None, help="Seed of the resampling (default: RUN_A's bootstrap seed).")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI to look run ids up in.")
def compare_cmd(run_a: str, run_b: str, resamples: int | None, permutations: int, seed: int | None,
                tracking_uri: str | None) -> None:
    """B - A in UF1 / UAR over the same samples (RUN_A, RUN_B: run folders, --seeds folders or MLflow run
    ids), pooled and per corpus, with a paired subject-bootstrap interval and a permutation p-value."""
    from .compare import CompareError, compare, comparison_markdown
    from .reporting.html import ReportError, load_result, resolve_run
    from .tracking import TrackingError

    try:
        a, b = (load_result(resolve_run(r, tracking_uri)) for r in (run_a, run_b))
        result = compare(a, b, resamples=resamples, permutations=permutations, seed=seed)
    except (ReportError, CompareError) as exc:
        _fail(exc, bad_input=True)
    except TrackingError as exc:  # the store a run id is looked up in
        _fail(exc)
    click.echo(comparison_markdown(result))


@cli.command()
@click.option("--plugin", "-p", "plugin", required=True, help="Method to tune (see `mer plugins`).")
@click.option("--space", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="YAML search space: config key -> {type: float|int, low, high[, log, step]} or "
                   "{type: categorical, choices: [...]}.")
@click.option("--trials", type=click.IntRange(min=1), required=True, help="Optuna trials per outer fold.")
@click.option("--inner-folds", type=click.IntRange(min=2), default=3, show_default=True,
              help="Subject-wise cross-validation folds over each outer fold's training subjects.")
@click.option("--write-profile", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the most-chosen values (median for numbers) to this YAML file, usable as --config.")
@click.option("--variant", "-v", default=None, help="Method variant.")
@click.option("--dataset", "-d", default="synthetic", show_default=True, help="Dataset (see `mer datasets`).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Folder holding the corpus.")
@click.option("--task", default=None, help="Label task (dataset default otherwise).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML overrides.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one config value (repeatable).")
@click.option("--profile", default=None, help="Base config profile (default as `mer run`).")
@click.option("--subjects", multiple=True, help="Restrict to these subjects (repeatable).")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N.")
@click.option("--dataset-option", "-D", "dataset_options", multiple=True, metavar="KEY=VALUE", help="Adapter option.")
@_work_options(tracking="Log to MLflow (trials as nested runs).", cache_dir="Feature cache and tune folders.",
               fresh="Start over instead of resuming an identical tune.",
               workers="Tune N outer folds in parallel processes; auto: one per CPU core (at most 4) on CPU, 0 on a "
                       "GPU.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def tune(plugin: str, space: Path, trials: int, inner_folds: int, write_profile: Path | None, variant: str | None,
         dataset: str, data_root: Path | None, task: str | None, config_file: Path | None, sets: tuple[str, ...],
         profile: str | None, subjects: tuple[str, ...], device: str | None, dataset_options: tuple[str, ...],
         tracking: bool, tracking_uri: str | None, experiment: str, cache_dir: Path, fresh: bool,
         workers: int | str, quiet: bool) -> None:
    """Nested tuning: per outer LOSO fold, an Optuna (TPE) search scored by subject-wise CV on that
    fold's training subjects; the test subject is predicted once with the chosen values. Costs
    outer folds x (trials x inner folds + 1) fits; a killed tune resumes."""
    from .config import parse_dataset_options
    from .reporting.artifacts import metrics_table
    from .runner import load_method
    from .spec import ExecutionOptions, RunSpec
    from .tuning import tune as run_tune, write_profile as save_profile

    with _stopped_or_failed():
        registry, method = load_method(None, plugin)
        spec = RunSpec(method, variant=variant, dataset=dataset, data_root=data_root,
                       dataset_options=parse_dataset_options(dataset_options), task=task, profile=profile,
                       config_file=config_file, overrides=sets, subjects=subjects or None)
        options = ExecutionOptions(device=device, workers=workers, cache_dir=cache_dir, fresh=fresh,
                                   progress=not quiet, tracking=tracking, tracking_uri=tracking_uri,
                                   experiment=experiment)
        outcome = run_tune(spec, options, space=space, trials=trials, inner_folds=inner_folds, registry=registry,
                           notify=lambda notice: click.secho(notice, fg="yellow", err=True))
        written = save_profile(outcome, write_profile) if write_profile else None
    r = outcome.result
    click.echo(f"\n{r.method}{' (' + r.variant + ')' if r.variant else ''} on {r.dataset} [{r.task}], tuned: "
               f"{len(outcome.choices)} outer folds x ({trials} trials x {inner_folds} inner folds + 1) = "
               f"{outcome.fits} fits, {outcome.seconds / 60:.1f} min in this invocation")
    click.echo("Outer result (each test subject predicted once, with its fold's chosen values):")
    click.echo(metrics_table(r))
    keys = [p.key for p in outcome.params]
    click.echo("\n| outer fold | inner UF1 | " + " | ".join(keys) + " |\n|---|---:|" + "---:|" * len(keys))
    for c in outcome.choices:
        click.echo(f"| {c.fold} | {c.inner_uf1:.4f} | " + " | ".join(_short(c.values[k]) for k in keys) + " |")
    click.echo("| most chosen / median | | " + " | ".join(_short(outcome.profile[k]) for k in keys) + " |")
    click.echo(f"\nTune folder: {outcome.tune_dir}")
    if written:
        click.echo(f"Profile written to {written} (use with --config; values chosen on these subjects)")
    if r.mlflow_run_id:
        click.echo(f"MLflow run: {r.mlflow_run_id} (outer folds and their trials are nested in it)")


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@cli.command()
@click.option("--plugin", "-p", "plugin", default=None, help="Method the model belongs to (checked against it).")
@click.option("--checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A fold model: <run>/folds/NNN/model.pt.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="A model folder written by `mer fit` (trained on every subject).")
@click.argument("clip", type=click.Path(path_type=Path, exists=True))
@click.option("--onset", type=int, default=None, help="Onset frame position (default: the first frame).")
@click.option("--apex", type=int, default=None, help="Apex frame position (default: spotted).")
@click.option("--variant", "-v", default=None, help="Checked against the run's variant.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Run folder with config and class names (default: the one holding the checkpoint).")
@click.option("--align", type=click.Choice(["none", "dlib"]), default="none", show_default=True,
              help="Face alignment before the features (dlib needs mercore[dlib]).")
def predict(plugin: str | None, checkpoint: Path | None, model_dir: Path | None, clip: Path, onset: int | None,
            apex: int | None, variant: str | None, run_dir: Path | None, align: str) -> None:
    """Classify CLIP (a folder of frames or a video file) with a `mer fit` model or a fold model.

    A model trained on a precomputed-flow release takes the clip's flow map,
    <release>/u_v_os/<stem>.png, as CLIP.
    """
    from .features.store import FeatureError
    from .plugins import UnknownNameError
    from .predict import RELEASE_SOURCE, PredictError, predict_clip

    model = checkpoint or model_dir
    if model is None or (checkpoint is not None and model_dir is not None):
        raise click.UsageError("give one of --model (a `mer fit` folder) or --checkpoint (a fold's model.pt)")
    try:
        result = predict_clip(plugin, model, clip, run_dir=run_dir, onset=onset, apex=apex,
                              variant=variant, align=align)
    except (PredictError, FeatureError, UnknownNameError) as exc:
        _fail(exc)
    if result.apex_source == RELEASE_SOURCE:
        click.echo(f"{clip}: {RELEASE_SOURCE}")
    else:
        click.echo(f"{clip}: {result.frames} frames, onset {result.onset}, apex {result.apex} ({result.apex_source})")
    for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
        click.echo(f"{name:<12} {p:.4f}")
    click.echo(f"prediction: {result.label}")


@cli.command("runs")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path(".mer"), show_default=True,
              help="The cache `mer run` used.")
def runs_command(cache_dir: Path) -> None:
    """List the local run folders: what each ran, how far it got, its UF1/UAR, and the config keys
    that differ from its profile's defaults."""
    from .local_runs import list_runs, runs_table

    runs = list_runs(cache_dir, _profile_defaults())
    if not runs:
        click.echo(f"no runs under {cache_dir / 'runs'}")
        return
    click.echo(runs_table(runs))
    click.echo(f"\n{len(runs)} run folder(s) under {cache_dir / 'runs'}; `mer report FOLDER` shows one, "
               "`mer fit FOLDER` trains its model on every subject")


def _profile_defaults() -> Callable[[Any], Any]:
    """config -> the config of the same method, variant, profile and dataset without overrides
    (None when the method is not installed), plugins loaded once."""
    from .plugins import load_registry
    from .runner import run_config
    from .spec import RunSpec

    registries: dict[str, Any] = {}

    def defaults(config: Any) -> Any:
        meta = config["meta"]
        try:
            if meta["method"] not in registries:
                registries[meta["method"]] = load_registry(only=[meta["method"]])
            registry = registries[meta["method"]]
            return run_config(RunSpec(meta["method"], dataset=meta["dataset"], variant=meta.get("variant"),
                                      profile=meta["profile"]), registry)
        except Exception:  # an uninstalled or broken plugin: the table shows the run without the diff
            return None
    return defaults


@cli.command("fit")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="The corpus the run evaluated (not needed for the synthetic corpus).")
@click.option("--dataset-option", "-D", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Dataset options the run was given (as for `mer run`).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Model folder (default: <cache-dir>/models/<run folder name>).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path(".mer"), show_default=True,
              help="Feature cache (the one the run used saves recomputing).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def fit_command(run_dir: Path, data_root: Path | None, dataset_options: tuple[str, ...], out: Path | None,
                cache_dir: Path, quiet: bool) -> None:
    """Train the final model of the evaluated run in RUN_DIR on every subject it evaluated, with its
    config, for `mer predict --model`. The LOSO result of RUN_DIR is the estimate for this model."""
    from .config import parse_dataset_options
    from .final import fit_final

    with _stopped_or_failed():
        folder = fit_final(run_dir, data_root=data_root, dataset_options=parse_dataset_options(dataset_options),
                           out=out, cache_dir=cache_dir, progress=not quiet,
                           notify=lambda line: click.echo(line, err=True))
    click.echo(f"Model folder: {folder}")
    click.echo(f"use it with: mer predict --model {folder} CLIP")
