"""Dispositions decided in chunks and hash buckets equal a plain in-memory reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmaff.data import dispositions as disp
from mmaff.data import facts as facts_mod
from mmaff.data.facts import FactsWriter

CFG = {"strategy": "seeded", "test": 40, "validation": 30, "max_fraction": 0.2, "expected_rows": {"a": 400, "b": 2000}}
GROUPS = ["a", "b", "c"]  # a: bands over their targets (held out), b: under them, c: not sized (max_fraction wide)


def _band_end(target: int, group: str) -> int:
    rows = CFG["expected_rows"].get(group)
    widest = 2**64 // 5  # max_fraction 0.2
    return widest if rows is None else min(widest, (target + 2 * math.isqrt(target)) * 2**64 // rows)


def _random_facts(tmp_path, n=6000, seed=0):
    rng = np.random.default_rng(seed)
    writer = FactsWriter(tmp_path / "facts")
    texts = rng.integers(1, n // 3, n).astype(np.uint64) * np.uint64(2654435761)  # many repeated texts
    ids = rng.integers(1, n * 4, n).astype(np.uint64) * np.uint64(11400714819323198485)  # some repeated ids
    columns = {
        "id_hash": ids,
        "scope_hash": np.where(rng.random(n) < 0.05, 0, texts).astype(np.uint64),
        "text_hash": texts ^ np.uint64(7),
        "gold_hash": rng.integers(1, 3, n).astype(np.uint64),
        "split_hash": rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2),
        "split": rng.choice([0, 1, 2, disp.UNASSIGNED], n, p=[0.3, 0.05, 0.05, 0.6]).astype(np.uint8),
        "primary": np.ones(n, dtype=np.uint8),
        "split_group": rng.integers(0, 3, n).astype(np.uint32),
        "cap_group": rng.integers(0, 2, n).astype(np.uint32),
        "file": np.zeros(n, dtype=np.uint32),
        "length": np.full(n, 10, dtype=np.uint32),
    }
    for i in range(n):
        for name, values in columns.items():
            writer.columns[name].append(int(values[i]))
        writer.flush_if_full()
    return writer.close(), columns


def _reference(columns, caps):
    """Straightforward per-record Python version of the same rules."""
    n = len(columns["id_hash"])
    reason = np.zeros(n, dtype=np.uint8)
    split = columns["split"].copy()
    seen = set()
    for i in range(n):
        if columns["id_hash"][i] in seen:
            reason[i] = disp.DUPLICATE_ID
        seen.add(columns["id_hash"][i])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        if reason[i] == 0 and columns["scope_hash"][i] and split[i] in (disp.TRAIN, disp.UNASSIGNED):
            groups.setdefault(int(columns["scope_hash"][i]), []).append(i)
    for members in groups.values():
        if len({int(columns["gold_hash"][i]) for i in members}) > 1:
            reason[members] = disp.CONFLICTING_LABELS
        else:
            reason[members[1:]] = disp.DUPLICATE_TEXT
    todo = [i for i in range(n) if reason[i] == 0 and split[i] == disp.UNASSIGNED]
    for g in set(int(columns["split_group"][i]) for i in todo):
        members = sorted((int(columns["split_hash"][i]), i) for i in todo if columns["split_group"][i] == g)
        test_end = _band_end(CFG["test"], GROUPS[g])
        validation_end = test_end + _band_end(CFG["validation"], GROUPS[g])
        test = [i for h, i in members if h < test_end]
        validation = [i for h, i in members if test_end <= h < validation_end]
        for i in todo:
            if columns["split_group"][i] == g:
                split[i] = disp.TRAIN
        for band, code, target in ((test, disp.TEST, CFG["test"]), (validation, disp.VALIDATION, CFG["validation"])):
            split[band] = code
            reason[band[target:]] = disp.HELD_OUT
    evaluation = {
        int(columns["text_hash"][i]) for i in range(n) if reason[i] == 0 and split[i] in (disp.VALIDATION, disp.TEST)
    }
    for i in range(n):
        if reason[i] == 0 and split[i] == disp.TRAIN and int(columns["text_hash"][i]) in evaluation:
            reason[i] = disp.TRAIN_IN_EVAL
    for g, cap in caps.items():
        train = sorted(
            (int(columns["split_hash"][i]), i)
            for i in range(n)
            if reason[i] == 0 and split[i] == disp.TRAIN and columns["cap_group"][i] == g
        )
        for _, i in train[cap:]:
            reason[i] = disp.CAPPED
    return reason, split


@pytest.mark.parametrize("small_chunks", [False, True])
def test_decide_matches_reference(tmp_path, monkeypatch, small_chunks):
    if small_chunks:  # many chunks and many hash buckets, as on a large dataset
        monkeypatch.setattr(facts_mod, "CHUNK", 257)
        monkeypatch.setattr(facts_mod, "BUCKET_BYTES", 4096)
    facts, columns = _random_facts(tmp_path)
    cap_keys = {0: ("EC", "en"), 1: ("EC", "de")}
    reason, split = disp.decide(facts, CFG, cap_keys, {"EC": 100}, GROUPS)
    expected_reason, expected_split = _reference(columns, {0: 100, 1: 100})
    assert np.array_equal(reason, expected_reason)
    kept = reason == disp.KEEP
    assert np.array_equal(split[kept], expected_split[kept])
    assert set(np.unique(reason).tolist()) == {0, 1, 2, 3, 4, 5, 6}  # every rule fired
