"""The seeded split rule re-derived from the registry, for builder tests: a record's split is the band of its
seeded source-id hash (test below one limit, validation below a second, train above both)."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import xxhash
from helpers import registry_spec


def band_ends(dataset: str, group: str) -> tuple[int, int]:
    """(end of the test band, end of the validation band) of a split group, in 64-bit hash units."""
    cfg = registry_spec(dataset).splits
    rows = cfg["expected_rows"]
    rows = rows.get(group, rows.get("default")) if isinstance(rows, dict) else rows
    widest = math.floor(Fraction(str(cfg["max_fraction"])) * 2**64)

    def width(target: int) -> int:
        return widest if rows is None else min(widest, (target + 2 * math.isqrt(target)) * 2**64 // rows)

    test_end = width(cfg["test"])
    return test_end, test_end + width(cfg["validation"])


def seeded_band(dataset: str, source_id: str, group: str) -> str:
    """The split a source row's records get, unless its band is over its target (then they are held out)."""
    value = xxhash.xxh3_64_intdigest(source_id.encode("utf-8"), registry_spec(dataset).splits["seed"])
    test_end, validation_end = band_ends(dataset, group)
    return "test" if value < test_end else "validation" if value < validation_end else "train"


def assert_seeded_splits(built, dataset: str, given: frozenset[str] = frozenset()) -> Counter:
    """Every record of `dataset` (but those of the source ids in `given`, whose split the source gave) is in
    its band's split, no band holds more source rows than its target; returns the record counts per split."""
    cfg = registry_spec(dataset).splits
    by_language = cfg["group_by"] == "language"
    rows_per_band: dict[tuple[str, str], set[str]] = {}
    for record in built.records.values():
        if record["dataset"] != dataset or record["source"]["source_id"] in given:
            continue
        group = record["language"] if by_language else "all"
        source_id = record["source"]["source_id"]
        assert record["split"] == seeded_band(dataset, source_id, group), record["id"]
        rows_per_band.setdefault((group, record["split"]), set()).add(source_id)
    for (group, split), source_ids in rows_per_band.items():
        if split != "train":
            assert len(source_ids) <= cfg[split], (group, split)
    return Counter(r["split"] for r in built.records.values() if r["dataset"] == dataset)
