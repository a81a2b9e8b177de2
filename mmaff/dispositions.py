"""Decisions over a whole dataset from its per-record facts (`facts.py`), in bounded memory.

Pass 1 of a dataset build records, per record: hashes of its id, of its normalised text inside its dedup
scope and inside its language, of its gold, and of its source id (seeded); its split code, split group and
cap group. From those alone this module decides, without holding any record in memory: duplicate ids,
duplicate or label-conflicting texts, seeded split assignment, train texts leaking into eval splits, caps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmaff.facts import Facts
from mmaff.schema import SPLITS

UNASSIGNED = 255
KEEP, DUPLICATE_ID, DUPLICATE_TEXT, CONFLICTING_LABELS, TRAIN_IN_EVAL, CAPPED = 0, 1, 2, 3, 4, 5
REASONS = {
    DUPLICATE_ID: "duplicate_id",
    DUPLICATE_TEXT: "duplicate_text",
    CONFLICTING_LABELS: "conflicting_labels",
    TRAIN_IN_EVAL: "train_text_in_eval_split",
}  # CAPPED is counted, not rejected
TRAIN, VALIDATION, TEST = (SPLITS.index(s) for s in ("train", "validation", "test"))


def later_duplicates(values: np.ndarray) -> np.ndarray:
    """Mask of entries equal to an earlier entry (the first occurrence is kept)."""
    mask = np.zeros(len(values), dtype=bool)
    if len(values) > 1:
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        mask[order[1:][ordered[1:] == ordered[:-1]]] = True
    return mask


def text_duplicates(scope: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks (conflicting, later): all members of a same-text group whose golds differ, and the non-first
    members of a group whose golds agree."""
    n = len(scope)
    conflicting, later = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n < 2:
        return conflicting, later
    order = np.lexsort((np.arange(n), gold, scope))
    s, g = scope[order], gold[order]
    same_scope = s[1:] == s[:-1]
    group = np.r_[0, np.cumsum(~same_scope)]
    bad_groups = np.unique(group[1:][same_scope & (g[1:] != g[:-1])])
    conflicting[order[np.isin(group, bad_groups)]] = True
    later[order[1:][same_scope]] = True
    return conflicting, later & ~conflicting


class _Smallest:
    """The k smallest distinct values seen per group, over a stream of (group, value) chunks."""

    def __init__(self, k: int) -> None:
        self.k, self.values = k, {}

    def add(self, groups: np.ndarray, values: np.ndarray) -> None:
        for group in np.unique(groups).tolist():
            merged = np.unique(np.concatenate([self.values.get(group, values[:0]), values[groups == group]]))
            self.values[group] = merged[: self.k]

    def threshold(self, group: int, rank: int) -> int | None:
        """The value of the given 0-based rank (None when rank < 0), or the largest kept value."""
        if rank < 0 or group not in self.values or not len(self.values[group]):
            return None
        kept = self.values[group]
        return int(kept[min(rank, len(kept) - 1)])


def _below(groups: np.ndarray, values: np.ndarray, thresholds: dict[int, int | None]) -> np.ndarray:
    """values <= the threshold of their group (False where the group has none)."""
    size = max([int(groups.max(initial=-1)) + 1, *(g + 1 for g in thresholds)])
    limit, has = np.zeros(size, dtype=np.uint64), np.zeros(size, dtype=bool)
    for group, value in thresholds.items():
        if value is not None:
            limit[group], has[group] = value, True
    return has[groups] & (values <= limit[groups])


def assign_seeded_splits(facts: Facts, reason: np.ndarray, split: np.ndarray, cfg: dict[str, Any]) -> None:
    """Per split group, the examples whose seeded source-id hashes are the `test` smallest go to test, the next
    `validation` to validation (each at most `max_fraction` of the group), the rest to train. A row keeps its
    split when other rows are added or removed; records of one source row share it."""
    todo = (reason == KEEP) & (split == UNASSIGNED)
    if not todo.any():
        return
    want_test, want_val = int(cfg.get("test", 0)), int(cfg.get("validation", 0))
    smallest, sizes = _Smallest(want_test + want_val), np.zeros(0, dtype=np.int64)
    for start, chunk in facts.chunks("split_group", "split_hash"):
        rows = todo[start : start + len(chunk["split_hash"])]
        smallest.add(chunk["split_group"][rows].astype(np.int64), chunk["split_hash"][rows])

    def unassigned(start: int, chunk: dict[str, np.ndarray]) -> np.ndarray:
        return todo[start : start + len(chunk["split_hash"])]

    # group sizes count source rows (distinct seeded hashes), not records: a row may give several records
    for bucket in facts.buckets("split_hash", ("split_group",), unassigned):
        pairs = np.unique(np.stack([bucket["split_group"].astype(np.uint64), bucket["split_hash"]]), axis=1)
        counts = np.bincount(pairs[0].astype(np.int64))
        sizes = np.pad(sizes, (0, max(0, len(counts) - len(sizes))))
        sizes[: len(counts)] += counts
    cap = np.floor(sizes * float(cfg.get("max_fraction", 0.2))).astype(np.int64)
    n_test, n_val = np.minimum(want_test, cap), np.minimum(want_val, cap)
    test_at = {g: smallest.threshold(g, int(n_test[g]) - 1) for g in range(len(sizes))}
    val_at = {g: smallest.threshold(g, int(n_test[g] + n_val[g]) - 1) if n_val[g] else None for g in range(len(sizes))}
    for start, chunk in facts.chunks("split_group", "split_hash"):
        stop = start + len(chunk["split_hash"])
        groups, values = chunk["split_group"].astype(np.int64), chunk["split_hash"]
        codes = np.where(
            _below(groups, values, test_at), TEST, np.where(_below(groups, values, val_at), VALIDATION, TRAIN)
        )
        rows = todo[start:stop]
        split[start:stop][rows] = codes[rows]


def _apply_caps(
    facts: Facts,
    reason: np.ndarray,
    split: np.ndarray,
    cap_keys: dict[int, tuple[str, str]],
    caps: dict[str, int | None],
) -> None:
    """At most `cap` train records per subtask and language: those with the smallest seeded hashes."""
    limits = {code: caps.get(subtask) for code, (subtask, _language) in cap_keys.items()}
    if all(v is None for v in limits.values()):
        return
    smallest = _Smallest(max(v for v in limits.values() if v is not None))
    train = (reason == KEEP) & (split == TRAIN)
    for start, chunk in facts.chunks("cap_group", "split_hash"):
        rows = train[start : start + len(chunk["split_hash"])]
        smallest.add(chunk["cap_group"][rows].astype(np.int64), chunk["split_hash"][rows])
    at = {g: smallest.threshold(g, limit - 1) if limit is not None else None for g, limit in limits.items()}
    for start, chunk in facts.chunks("cap_group", "split_hash"):
        stop = start + len(chunk["split_hash"])
        groups = chunk["cap_group"].astype(np.int64)
        capped = np.array([limits.get(g) is not None for g in range(int(groups.max(initial=0)) + 1)])[groups]
        capped &= (
            ~_below(groups, chunk["split_hash"], {g: t for g, t in at.items() if t is not None}) & train[start:stop]
        )
        reason[start:stop][capped] = CAPPED


def decide(
    facts: Facts, split_cfg: dict[str, Any], cap_keys: dict[int, tuple[str, str]], caps: dict[str, int | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Per record: its disposition code (KEEP or a reason) and its final split code.

    Only two 1-byte columns are held whole; everything else streams in chunks or hash buckets."""
    reason = np.zeros(facts.rows, dtype=np.uint8)
    split = facts.column("split")
    for bucket in facts.buckets("id_hash", (), lambda start, chunk: np.ones(len(chunk["id_hash"]), dtype=bool)):
        reason[bucket["index"][later_duplicates(bucket["id_hash"])]] = DUPLICATE_ID

    def text_candidates(start: int, chunk: dict[str, np.ndarray]) -> np.ndarray:
        stop = start + len(chunk["scope_hash"])
        # official validation/test sets are kept whole so they stay comparable with published numbers
        return (
            (reason[start:stop] == KEEP) & (chunk["scope_hash"] != 0) & np.isin(split[start:stop], (TRAIN, UNASSIGNED))
        )

    for bucket in facts.buckets("scope_hash", ("gold_hash",), text_candidates):
        conflicting, later = text_duplicates(bucket["scope_hash"], bucket["gold_hash"])
        reason[bucket["index"][later]] = DUPLICATE_TEXT
        reason[bucket["index"][conflicting]] = CONFLICTING_LABELS
    assign_seeded_splits(facts, reason, split, split_cfg)
    kept_eval = (reason == KEEP) & ((split == VALIDATION) | (split == TEST))
    evaluation = np.unique(
        np.concatenate(
            [c["text_hash"][kept_eval[s : s + len(c["text_hash"])]] for s, c in facts.chunks("text_hash")]
            or [np.zeros(0, np.uint64)]
        )
    )
    evaluation = evaluation[evaluation != 0]
    for start, chunk in facts.chunks("text_hash"):
        stop = start + len(chunk["text_hash"])
        leaked = (reason[start:stop] == KEEP) & (split[start:stop] == TRAIN) & np.isin(chunk["text_hash"], evaluation)
        reason[start:stop][leaked] = TRAIN_IN_EVAL
    _apply_caps(facts, reason, split, cap_keys, caps)
    return reason, split
