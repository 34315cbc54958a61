"""The MEGC2019 composite: SMIC-HS + CASME II + SAMM under the 3-class rules (442 samples, 68 subjects).

One ``--data-root`` holds the three corpora::

    <root>/CASME2/   what the casme2 adapter reads (CASME2_RAW_selected/ + CASME2-coding-*.xlsx)
    <root>/SAMM/     the SAMM frame folder (subject folders 006/ ...) with SAMM_Micro_FACS_Codes_v2.xlsx
                     in it or in <root>; or <root>/SAMM/SAMM/... with the sheet in <root>/SAMM/
    <root>/SMIC/     the folder holding HS/ (or <root>/HS directly)

Options ``casme2_root``, ``samm_root``, ``smic_root`` (absolute or relative to root) override the
sub-folders; ``apex`` and ``landmarks`` are passed to SMIC; ``gt: PATH`` reads the official ground
truth (``dataset,subject,clip,label`` rows, header or not, blank rows ignored) and keeps exactly its
samples, checking every GT row is found with the same label (a mismatch or a missing sample is an
error naming the GT row; with skip_invalid it is listed in ``skipped``).

Counts from the rules (the adapters' own ``megc3`` tasks): SMIC 164 (16 subjects), CASME II 145
(24), SAMM 133 (28); negative 250, positive 109, surprise 83. ``Sample.dataset`` is the corpus, so
LOSO groups are ``casme2/sub01``, ``samm/006``, ``smic/s01``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping

from ..labels import MEGC3
from ..sample import Sample
from .casme2 import load_casme2_tree
from .dataset import Dataset, DatasetError, LoadedDataset, LoadOptions, choose_task, data_root, skip_or_raise
from .folders import option_path
from .samm import load_samm
from .smic import load_smic

CORPORA = ("smic", "casme2", "samm")
CANDIDATES = {"casme2": ("CASME2", "casme2", "CASME_II", "CASME II"), "samm": ("SAMM", "samm"),
              "smic": ("SMIC", "smic", "SMIC-HS", "SMIC_all_raw")}


def corpus_root(root: Path, extra: Mapping[str, Any], corpus: str) -> Path:
    """Where ``corpus`` lies under ``root`` (option ``<corpus>_root`` first)."""
    given = option_path(root, extra, f"{corpus}_root", folder=True)
    if given is not None:
        return given
    for name in CANDIDATES[corpus]:
        if (root / name).is_dir():
            return root / name
    if corpus == "smic" and (root / "HS").is_dir():
        return root
    raise DatasetError(f"MEGC2019 composite: no {corpus} folder in {root} (expected one of "
                       f"{list(CANDIDATES[corpus])}; or pass -D {corpus}_root=PATH)")


def read_gt(path: Path) -> list[tuple[int, str, str, str, int]]:
    """``(row, dataset, subject, clip, label)`` of an MEGC2019 GT csv; SAMM subjects zero-padded."""
    out = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row]
            if not any(cells) or (i == 1 and cells[0].lower() == "dataset"):
                continue
            if len(cells) < 4 or cells[0] not in CORPORA or cells[3] not in ("0", "1", "2"):
                raise DatasetError(f"{path} row {i}: expected dataset,subject,clip,label (0/1/2), got {row}")
            subject = f"{int(cells[1]):03d}" if cells[0] == "samm" and cells[1].isdigit() else cells[1]
            out.append((i, cells[0], subject, cells[2], int(cells[3])))
    return out


def load_megc2019(root: Path | str, options: LoadOptions) -> LoadedDataset:
    """Build the composite (task ``megc3``) from the three corpora under ``root``."""
    root = data_root(root)
    task = choose_task("megc2019", Megc2019Dataset.tasks, options.task)
    extra = dict(options.extra or {})
    sub_extra: dict[str, dict[str, Any]] = {
        "smic": {k: extra[k] for k in ("apex", "landmarks") if k in extra}, "samm": {},
        "casme2": {k: extra[k] for k in ("sparse_frames",) if k in extra}}
    loaders = {"smic": lambda r, o: load_smic(r, o), "casme2": lambda r, o: load_casme2_tree(r, o, "casme2"),
               "samm": lambda r, o: load_samm(r, o)}
    samples: list[Sample] = []
    skipped: list[str] = []
    for corpus in CORPORA:
        sub = LoadOptions(task="megc3", skip_invalid=options.skip_invalid, cache_dir=options.cache_dir,
                          extra=sub_extra[corpus])
        part = loaders[corpus](corpus_root(root, extra, corpus), sub)
        samples.extend(part.samples)
        skipped.extend(f"{corpus}: {m}" for m in part.skipped)
    gt_path = option_path(root, extra, "gt", folder=False)
    if gt_path is not None:
        by_key = {(s.dataset, s.subject, s.clip): s for s in samples}
        kept: list[Sample] = []
        for row, dataset, subject, clip, label in read_gt(gt_path):
            s = by_key.get((dataset, subject, clip))
            if s is None:
                problem = f"{dataset}/{subject}/{clip} is not among the composite's samples"
            elif s.labels.get("megc3") != label:
                problem = f"{dataset}/{subject}/{clip} has label {s.labels.get('megc3')} here, {label} in the GT"
            else:
                kept.append(s)
                continue
            skip_or_raise(f"{gt_path} row {row}: {problem}", options, skipped, "it")
        samples = kept
    samples.sort(key=lambda s: (CORPORA.index(s.dataset), s.subject, s.clip))
    return LoadedDataset(name="megc2019", task=task, labels=MEGC3, samples=samples, skipped=skipped)


class Megc2019Dataset(Dataset):
    """MEGC2019 composite (SMIC-HS + CASME II + SAMM, 3 classes, 68 LOSO subjects)."""

    name = "megc2019"
    options = ("casme2_root", "samm_root", "smic_root", "gt", "apex", "landmarks", "sparse_frames")
    description = "MEGC2019 composite: <root>/{SMIC,CASME2,SAMM}; 442 samples, 68 subjects; -D gt=PATH to verify"
    tasks = {"megc3": MEGC3}

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        return load_megc2019(self.need_root(root, "the folder holding CASME2/, SAMM/ and SMIC/"), options)
