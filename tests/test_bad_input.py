"""Bad input and damaged files end in one line naming what is at fault (issue 34): exit 2 for
bad input, and damaged caches and records are recomputed with a notice instead of failing."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from mercore.cli import cli

QUICK = ("--subjects", "s0", "--subjects", "s1", "--set", "train.epochs=1", "--workers", "0", "--no-tracking")
TINY_CORPUS = ("-D", "subjects=2", "-D", "clips_per_subject=2", "-D", "size=32", "-D", "max_frames=22")


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (("--dataset", "nosuch"), "Error: unknown dataset 'nosuch'; choose one of: "),
    (("--task", "nosuch"), "Error: dataset 'toy' has no task 'nosuch'; choose one of ['megc3']"),
    (("--dataset", "synthetic", "-D", "nosuch=1"), ("Error: -D nosuch: dataset 'synthetic' has no option 'nosuch'; "
                                                    "its options: subjects, clips_per_subject, size, ")),
    (("--dataset", "synthetic", "--set", "data.options.nosuch=1"),
     "Error: config key 'data.options.nosuch': dataset 'synthetic' has no option 'nosuch'; its options: subjects, "),
    (("-D", "subjects"), "Error: -D/--dataset-option 'subjects': expected key=value, e.g. -D subjects=8"),
])
def test_a_bad_name_or_dataset_option_is_bad_input_before_any_work(toy_cli, args, message):
    out = toy_cli(*args)
    assert out.exit_code == 2
    assert one_line(out.output).startswith(message)
    assert not toy_cli.cache.exists()  # nothing read, generated or computed


@pytest.mark.parametrize("options, message", [
    (("-D", "subjects=100000000"), "generator parameter 'subjects': expected an integer from 1 to 200, got 100000000"),
    (("-D", "size=100000"), "generator parameter 'size': expected an integer from 32 to 1024, got 100000"),
    (("-D", "subjects=200", "-D", "clips_per_subject=200", "-D", "size=256"),
     "give 1.6e+11 pixels of frames, above the bound 4e+09"),
    (("-D", "max_frames=2000"), "'max_frames': expected an integer from 3 to 1000"),
    (("-D", "peak_px=[1, .inf]"), "'peak_px': expected two numbers 0 < low <= high"),
])
def test_a_synthetic_corpus_beyond_its_bounds_is_refused_before_anything_is_written(toy_cli, options, message):
    """-D subjects=100000000 once wrote about 50 MB/s with no output and no end."""
    out = toy_cli("--dataset", "synthetic", *options)
    assert out.exit_code == 2
    line = one_line(out.output)
    assert line.startswith("Error: -D option of the synthetic corpus: ") and message in line
    assert not toy_cli.cache.exists()
    synth = CliRunner().invoke(cli, ["synth", "--out", str(toy_cli.cache), "--subjects", "100000000"])
    assert synth.exit_code == 2 and "'subjects': expected an integer from 1 to 200" in one_line(synth.output)
    assert not toy_cli.cache.exists()


def test_features_size_0_is_refused_before_the_synthetic_corpus_is_written(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "ststnet", "--no-tracking", "--cache-dir", str(tmp_path),
                                   "--set", "features.size=0", *TINY_CORPUS])
    assert out.exit_code == 2
    assert one_line(out.output) == ("Error: config key 'features.size': 0 is not allowed; expected an integer >= 1 or null")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting, message", [
    ("evaluation.bootstrap.resamples=0", "config key 'evaluation.bootstrap.resamples': 0 is not allowed; expected an "
                                         "integer in [1, 100000]"),
    ("evaluation.bootstrap.resamples=-5", "config key 'evaluation.bootstrap.resamples': -5 is not allowed"),
    ("evaluation.bootstrap.seed=-1", "config key 'evaluation.bootstrap.seed': -1 is not allowed"),
    ("evaluation.interval=nosuch", "config key 'evaluation.interval': 'nosuch' is not allowed; expected one of "
                                   "jackknife_t, percentile"),
])
def test_a_bad_evaluation_setting_is_refused_before_any_fold(toy_cli, setting, message):
    """bootstrap.resamples=0 was accepted and crashed once every fold had trained."""
    out = toy_cli(*QUICK, "--set", setting)
    assert out.exit_code == 2
    assert one_line(out.output).startswith(f"Error: {message}")
    assert not toy_cli.cache.exists()


@pytest.mark.parametrize("filters, message", [
    ("abc", "config key 'model.filters': 'abc' is not allowed; expected a list of an integer >= 1"),
    ("{a: 1}", "config key 'model.filters': {'a': 1} is not allowed"),
    ("[a, b, c]", "config key 'model.filters': ['a', 'b', 'c'] is not allowed"),
    ("[0,0,0]", "config key 'model.filters': [0, 0, 0] is not allowed"),
    ("[]", "config section 'model': model.filters needs at least one stream's filter count"),
])
def test_ststnet_filters_of_the_wrong_kind_name_the_key_before_the_corpus_is_written(tmp_path, filters, message):
    """A string, a mapping or a list of strings once gave a torch TypeError, [] failed in the fold
    workers and [0, 0, 0] after the features were computed, none naming model.filters."""
    out = CliRunner().invoke(cli, ["run", "--plugin", "ststnet", "--no-tracking", "--cache-dir", str(tmp_path),
                                   "--set", f"model.filters={filters}", *TINY_CORPUS])
    assert out.exit_code == 2
    assert one_line(out.output).startswith(f"Error: {message}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds, message", [(",", "the list of seeds is empty"),
                                            ("0,,1", "the list of seeds has an empty entry")])
def test_a_malformed_seeds_list_says_so(toy_cli, seeds, message):
    out = toy_cli("--seeds", seeds)
    assert out.exit_code == 2 and f"Invalid value for '--seeds': {seeds!r}: {message}" in out.output
    assert "distinct" not in out.output


@pytest.mark.parametrize("command", ["run", "config"])
def test_a_config_file_that_is_binary_or_a_folder_is_one_line(toy_cli, tmp_path, command):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)))
    for path, why in ((binary, "is not text (a binary file?)"), (tmp_path, "is a folder")):
        args = ("--config", str(path))
        out = toy_cli(*args) if command == "run" else CliRunner().invoke(cli, ["config", "-p", "toy", "-d", "toy", *args])
        assert out.exit_code == 2
        assert one_line(out.output) == f"Error: config file {path} {why}; give a YAML file"


def test_report_and_compare_on_a_truncated_summary_name_it(toy_cli):
    assert toy_cli(*QUICK).exit_code == 0
    (run_dir,) = toy_cli.cache.glob("runs/*")
    summary = run_dir / "artifacts" / "summary.json"
    text = summary.read_text()
    for damaged, why in ((text[: len(text) // 2], "not valid JSON"), ('{"method": "toy"}', "it lacks dataset, task")):
        summary.write_text(damaged)
        for args in (["report", str(run_dir), "--out", str(toy_cli.cache / "report")],
                     ["compare", str(run_dir), str(run_dir)]):
            out = CliRunner().invoke(cli, args)
            assert out.exit_code == 2, out.output
            line = one_line(out.output)
            assert line.startswith(f"Error: {summary} is damaged") and why in line
            assert line.endswith("rerun the same `mer run` to write it again (finished folds are reused)")


def test_a_fold_record_holding_a_list_is_recomputed_with_a_notice_naming_it(toy_cli):
    assert toy_cli(*QUICK).exit_code == 0
    (record,) = toy_cli.cache.glob("runs/*/folds/001.json")
    record.write_text("[]")
    out = toy_cli(*QUICK)
    assert out.exit_code == 0, out.output
    assert f"1 fold(s) reused from an earlier identical run (--fresh recomputes them); 1 computed: record " \
           f"{record} unreadable (1)" in out.output
    assert record.read_text().startswith("{")


def test_an_empty_cached_feature_is_recomputed_with_a_notice_naming_it(toy_cli, caplog):
    assert toy_cli(*QUICK).exit_code == 0
    entry = min(toy_cli.cache.glob("features/toy_signal/*/*"))
    entry.write_bytes(b"")
    out = toy_cli(*QUICK)
    assert out.exit_code == 0, out.output
    assert "Aborted!" not in out.output
    assert any(r.getMessage().startswith(f"feature cache file {entry} is damaged") for r in caplog.records)
    assert entry.stat().st_size > 0


@pytest.mark.parametrize("command", [["report", "{ref}", "--out", "r"], ["compare", "{ref}", "{ref}"]])
@pytest.mark.parametrize("ref, message", [
    ("runs/toy-mistyped", ("'runs/toy-mistyped' is neither a run folder nor an MLflow run id (32 hex digits): no "
                           "such folder; `mer runs` lists the run folders")),
    ("0123456789abcdef0123456789abcdef", ("'0123456789abcdef0123456789abcdef' is not a run folder, and there is no "
                                          "MLflow store sqlite:///mlflow.db to look it up in as a run id; give the "
                                          "--tracking-uri the run was logged to")),
])
def test_report_and_compare_on_a_mistyped_folder_fail_at_once_and_create_nothing(command, ref, message, tmp_path,
                                                                                  monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    start = time.monotonic()
    out = CliRunner().invoke(cli, [a.format(ref=ref) for a in command])
    assert time.monotonic() - start < 10  # it opened (and created) an MLflow store first: 45 s
    assert out.exit_code == 2
    assert one_line(out.output) == f"Error: {message}"
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no report folder


def error_line(output: str) -> str:
    """The one error line of a run that had started (notices may precede it)."""
    errors = [line for line in output.strip().splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in output and output.strip().endswith(errors[0]), output
    return errors[0]


def fail_writes(monkeypatch, pattern: str, error: int, after: int = 0) -> list[str]:
    """Atomic writes (mercore.io) of a file matching ``pattern`` fail with ``error`` once ``after``
    of them have succeeded, as a write to a full disk fails; returns the names matched."""
    import fnmatch
    import os
    import types

    import mercore.io

    matched: list[str] = []

    class Failing:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def write(self, data):
            raise OSError(error, os.strerror(error))

    def fdopen(fd, *args, **kwargs):
        f = os.fdopen(fd, *args, **kwargs)
        name = os.readlink(f"/proc/self/fd/{fd}")
        if fnmatch.fnmatch(name, pattern):
            matched.append(name)
            if len(matched) > after:
                return Failing(f)
        return f

    monkeypatch.setattr(mercore.io, "os", types.SimpleNamespace(**{**vars(os), "fdopen": fdopen}))
    return matched


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_keeps_the_finished_fold(toy_cli, monkeypatch):
    import errno
    import os

    import mercore.io

    matched = fail_writes(monkeypatch, "*/.model.pt.*.tmp", errno.ENOSPC, after=1)
    out = toy_cli(*QUICK)
    assert out.exit_code == 1 and len(matched) == 2
    line = error_line(out.output)
    assert line.startswith("Error: no space left on the disk holding ") and "model.pt" in line
    assert line.endswith("rerun the same command: finished folds and cached features are kept")
    assert not list(toy_cli.cache.rglob("*.tmp"))  # no half-written file left behind
    monkeypatch.setattr(mercore.io, "os", os)  # space again
    rerun = toy_cli(*QUICK)
    assert rerun.exit_code == 0 and "1 fold(s) reused" in rerun.output, rerun.output


def test_a_full_disk_while_caching_features_is_one_line_naming_the_file(toy_cli, monkeypatch):
    import errno

    fail_writes(monkeypatch, "*/features/*", errno.ENOSPC)
    out = toy_cli(*QUICK)
    assert out.exit_code == 1
    line = error_line(out.output)
    assert line.startswith(f"Error: no space left on the disk holding {toy_cli.cache / 'features'}")


def test_a_cache_dir_that_is_a_file_is_one_line_naming_it(toy_cli):
    toy_cli.cache.write_text("not a folder")
    out = toy_cli(*QUICK)
    assert out.exit_code == 1
    line = error_line(out.output)
    assert line.startswith(f"Error: {toy_cli.cache}") and "is a file where a folder is needed" in line


def test_a_cache_dir_without_write_permission_is_one_line_naming_it(toy_cli, monkeypatch):
    """Simulated: the tests may run as root, whom a chmod does not stop."""
    import errno
    import types

    import mercore.io

    def mkstemp(dir, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(mercore.io, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))
    out = toy_cli(*QUICK)
    assert out.exit_code == 1
    line = error_line(out.output)
    assert line.startswith(f"Error: permission denied: {toy_cli.cache}") and "writable (--cache-dir" in line


def test_an_unreadable_apex_frame_is_one_line_naming_it(toy_cli, monkeypatch):
    import errno

    import mercore.features.store

    def unreadable(sample):
        raise PermissionError(errno.EACCES, "Permission denied", f"/corpus/{sample.clip}/apex.jpg")

    monkeypatch.setattr(mercore.features.store, "sample_fingerprint", unreadable)
    out = toy_cli(*QUICK)
    assert out.exit_code == 1
    line = error_line(out.output)
    assert line.startswith("Error: permission denied: /corpus/") and "apex.jpg: make it readable" in line


def test_an_mlflow_store_on_a_read_only_file_system_is_one_line_naming_it(toy_cli, monkeypatch):
    """Simulated where the store is first written: the lock file beside the database."""
    import errno

    import mercore.tracking

    def read_only(file, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(file))

    monkeypatch.setattr(mercore.tracking, "open", read_only, raising=False)
    out = toy_cli(*(a for a in QUICK if a != "--no-tracking"))
    assert out.exit_code == 1
    line = error_line(out.output)
    assert line.startswith(f"Error: MLflow store {toy_cli.db}: cannot create its lock file "
                           f"{toy_cli.db.parent / '.mlflow.db.lock'} (Read-only file system); ")
    assert "--tracking-uri" in line and not list(toy_cli.cache.rglob("folds/*"))  # before any fold


def test_mer_synth_on_a_full_disk_or_under_a_file_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import mercore.data.synthetic.corpus as corpus

    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = CliRunner().invoke(cli, ["synth", "--out", str(blocker / "corpus"), "--subjects", "1", "--size", "32"])
    assert out.exit_code == 1
    assert one_line(out.output) == (f"Error: {blocker} (or a folder above it) is a file where a folder is needed: "
                                    f"give --out a folder; nothing half-written is left")

    def full(folder, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "sub01" / "img1.jpg"))

    monkeypatch.setattr(corpus, "_write_tree", full)
    out = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "corpus"), "--subjects", "1", "--size", "32"])
    assert out.exit_code == 1
    assert one_line(out.output).startswith("Error: no space left on the disk holding ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the temporary folder is gone
