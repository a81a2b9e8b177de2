"""Decisions over a whole dataset from its per-record facts (`facts.py`), in bounded memory.

Pass 1 of a dataset build records, per record: hashes of its id, of its normalised text inside its dedup
scope and inside its language, of its gold, and of its source id (seeded); its split code, split group and
cap group. From those alone this module decides, without holding any record in memory: duplicate ids,
duplicate or label-conflicting texts, seeded split assignment (fixed hash bands, `SeededSplits`), train
texts leaking into eval splits, caps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from mmaff.data.facts import Facts
from mmaff.data.schema import SPLITS

UNASSIGNED = 255
KEEP, DUPLICATE_ID, DUPLICATE_TEXT, CONFLICTING_LABELS, TRAIN_IN_EVAL, CAPPED, HELD_OUT = 0, 1, 2, 3, 4, 5, 6
REASONS = {
    DUPLICATE_ID: "duplicate_id",
    DUPLICATE_TEXT: "duplicate_text",
    CONFLICTING_LABELS: "conflicting_labels",
    TRAIN_IN_EVAL: "train_text_in_eval_split",
}
COUNTED = {CAPPED: "capped", HELD_OUT: "held_out"}  # counted in the file stats, not rejected
TRAIN, VALIDATION, TEST = (SPLITS.index(s) for s in ("train", "validation", "test"))
_HASH_SPACE = 1 << 64
_SPLIT_KEYS = {"strategy", "seed", "group_by", "test", "validation", "expected_rows", "max_fraction"}


@dataclass(frozen=True)
class SeededSplits:
    """The `splits:` entry of a seeded dataset: fixed bands of the 64-bit seeded source-id hash per split group.

    Test is [0, t), validation [t, t + v), train the rest. A band's width is fixed by the group's *expected*
    size, not its actual one: `(target + 2 * isqrt(target)) / expected_rows` of the hash space (the margin
    makes a band reach its target at that size with ~97% probability), at most `max_fraction`. The targets
    `test` / `validation` are caps on source rows: a band holding more keeps its smallest hashes and the
    rest is held out (never trained on, never evaluated), because sending it to train would move an
    evaluation row of a smaller build into train. A group smaller than expected gets proportionally fewer
    evaluation rows (at most `max_fraction` of it per band); a group neither listed in `expected_rows` nor
    covered by its `default` gets bands `max_fraction` wide. Integer arithmetic only: the limits are the same
    on every machine. Changing `expected_rows`, a target, `max_fraction` or `seed` redraws the splits.
    """

    test: int
    validation: int
    expected_rows: Mapping[str, int]  # per split group; `default` for groups not listed
    max_fraction: Fraction

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SeededSplits:
        """Checked config; ValueError naming the key."""
        unknown = sorted(set(cfg) - _SPLIT_KEYS)
        if unknown:
            raise ValueError(f"splits: unknown keys {unknown} (allowed: {sorted(_SPLIT_KEYS)})")
        test, validation = (_count(f"splits.{key}", cfg.get(key, 0), minimum=0) for key in ("test", "validation"))
        rows = cfg.get("expected_rows")
        rows = {"default": rows} if not isinstance(rows, Mapping) else rows
        expected = {str(group): _count(f"splits.expected_rows.{group}", n, minimum=1) for group, n in rows.items()}
        max_fraction = cfg.get("max_fraction", 0.2)
        if isinstance(max_fraction, bool) or not isinstance(max_fraction, (int, float)) or not 0 < max_fraction < 0.5:
            raise ValueError(f"splits.max_fraction: {max_fraction!r} is not a number in (0, 0.5)")
        return cls(test, validation, expected, Fraction(str(max_fraction)))

    def width(self, target: int, group: str | None) -> int:
        """Width of a band in hash units."""
        rows = self.expected_rows.get(group, self.expected_rows.get("default"))
        widest = math.floor(self.max_fraction * _HASH_SPACE)
        if target == 0:
            return 0
        if rows is None:  # a group the registry does not size: treated as small
            return widest
        return min(widest, (target + 2 * math.isqrt(target)) * _HASH_SPACE // rows)

    def limits(self, groups: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Per group code: the end of its test band and of its validation band (uint64, exclusive)."""
        test_end = [self.width(self.test, g) for g in groups]
        validation_end = [t + self.width(self.validation, g) for t, g in zip(test_end, groups)]
        return np.array(test_end, dtype=np.uint64), np.array(validation_end, dtype=np.uint64)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: {value!r} is not an integer >= {minimum}")
    return value


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


def _band_of(groups: np.ndarray, hashes: np.ndarray, test_end: np.ndarray, validation_end: np.ndarray) -> np.ndarray:
    """TEST below the group's test limit, VALIDATION below its validation limit, TRAIN above both."""
    return np.where(
        hashes < test_end[groups], TEST, np.where(hashes < validation_end[groups], VALIDATION, TRAIN)
    ).astype(np.uint8)


def assign_seeded_splits(
    facts: Facts, reason: np.ndarray, split: np.ndarray, cfg: dict[str, Any], groups: Sequence[str] = ()
) -> None:
    """Fixed hash bands per split group (`SeededSplits`): test below one limit, validation below a second,
    train above both; a band holding more source rows than its target keeps the smallest hashes and holds
    the overflow out (HELD_OUT). A row's band depends only on its own seeded hash and its group's limits,
    so adding or removing rows never moves it between train and evaluation; records of one source row
    share the hash, hence the split. `groups` names the split-group codes (unnamed: the `default` size)."""
    todo = (reason == KEEP) & (split == UNASSIGNED)
    if not todo.any():
        return
    if cfg.get("strategy") != "seeded":  # a dataset with official splits: unassigned rows train
        split[todo] = TRAIN
        return
    bands = SeededSplits.from_config(cfg)
    n_groups = max([len(groups), *(int(c["split_group"].max(initial=0)) + 1 for _, c in facts.chunks("split_group"))])
    test_end, validation_end = bands.limits([groups[g] if g < len(groups) else None for g in range(n_groups)])
    targets = {TEST: bands.test, VALIDATION: bands.validation}
    smallest = {code: _Smallest(target) for code, target in targets.items()}
    for start, chunk in facts.chunks("split_group", "split_hash"):
        rows = todo[start : start + len(chunk["split_hash"])]
        group, value = chunk["split_group"][rows].astype(np.int64), chunk["split_hash"][rows]
        band = _band_of(group, value, test_end, validation_end)
        for code, kept in smallest.items():
            kept.add(group[band == code], value[band == code])
    # the largest hash a band admits (its target-th smallest); None where the target is 0
    last = {
        code: {g: smallest[code].threshold(g, target - 1) for g in range(n_groups)} for code, target in targets.items()
    }
    for start, chunk in facts.chunks("split_group", "split_hash"):
        stop = start + len(chunk["split_hash"])
        group, value = chunk["split_group"].astype(np.int64), chunk["split_hash"]
        band = _band_of(group, value, test_end, validation_end)
        overflow = np.zeros(len(band), dtype=bool)
        for code in targets:
            overflow |= (band == code) & ~_below(group, value, last[code])
        rows = todo[start:stop]
        split[start:stop][rows] = band[rows]
        reason[start:stop][rows & overflow] = HELD_OUT


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
    facts: Facts,
    split_cfg: dict[str, Any],
    cap_keys: dict[int, tuple[str, str]],
    caps: dict[str, int | None],
    split_groups: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Per record: its disposition code (KEEP, a reason, or a counted CAPPED / HELD_OUT) and its final split
    code. `split_groups` names the split-group codes (code i = split_groups[i]).

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
    assign_seeded_splits(facts, reason, split, split_cfg, split_groups)
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
