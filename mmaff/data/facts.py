"""Fixed-size per-record facts of a dataset build, kept on disk column by column.

Pass 1 appends one row of facts per example (hashes, codes, lengths) and flushes them to `<name>.bin`
files every CHUNK rows, so memory stays flat however large the dataset. Readers stream columns back in
chunks (plain reads, not memory maps, so pages do not pile up in the process) or partition them into
hash buckets small enough to sort in memory.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHUNK = 1 << 16
BUCKET_BYTES = 4 << 20  # aim for buckets of about this size when partitioning by a hash
COLUMNS = {  # name: array typecode
    "id_hash": "Q", "scope_hash": "Q", "text_hash": "Q", "gold_hash": "Q", "split_hash": "Q",
    "split": "B", "primary": "B", "split_group": "I", "cap_group": "I", "file": "I", "length": "I",
    "visual_tokens": "I",
}  # fmt: skip
_DTYPES = {"Q": np.uint64, "I": np.uint32, "B": np.uint8}


class FactsWriter:
    """Column buffers that pass 1 appends to; `flush_if_full` after each row keeps them small."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.columns = {name: array(code) for name, code in COLUMNS.items()}
        self.rows = 0

    def flush_if_full(self) -> None:
        if len(self.columns["length"]) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        for name, values in self.columns.items():
            with open(self.folder / f"{name}.bin", "ab") as f:
                values.tofile(f)
        self.rows += len(self.columns["length"])
        self.columns = {name: array(code) for name, code in COLUMNS.items()}

    def close(self) -> Facts:
        self.flush()
        return Facts(self.folder, self.rows)


class Facts:
    """Read side: whole small columns, chunks of several columns, or hash buckets."""

    def __init__(self, folder: Path, rows: int) -> None:
        self.folder, self.rows = folder, rows

    def column(self, name: str) -> np.ndarray:
        """A whole column in memory: only for the 1-byte columns (split, primary) or small datasets."""
        return (
            np.fromfile(self.folder / f"{name}.bin", dtype=_DTYPES[COLUMNS[name]])
            if self.rows
            else np.zeros(0, _DTYPES[COLUMNS[name]])
        )

    def chunks(self, *names: str, size: int | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(start row, {name: values}) for consecutive chunks of the named columns."""
        size = size or CHUNK
        files = {name: open(self.folder / f"{name}.bin", "rb") for name in names} if self.rows else {}
        try:
            for start in range(0, self.rows, size):
                count = min(size, self.rows - start)
                yield start, {n: np.fromfile(f, dtype=_DTYPES[COLUMNS[n]], count=count) for n, f in files.items()}
        finally:
            for f in files.values():
                f.close()

    def buckets(self, key: str, extra: tuple[str, ...], select) -> Iterator[dict[str, np.ndarray]]:
        """Rows where `select(start, chunk)` is true, partitioned by the top bits of the `key` hash: each
        bucket holds every selected row with its hash prefix, as {"index", key, *extra} arrays in row order."""
        n_buckets = 1 << max(0, int(np.ceil(np.log2(max(1, self.rows * 24 / BUCKET_BYTES)))))
        shift = np.uint64(64 - int(np.log2(n_buckets))) if n_buckets > 1 else None
        names = (key, *extra)
        if n_buckets == 1:
            parts = {n: [] for n in ("index", *names)}
            for start, chunk in self.chunks(*names):
                rows = np.flatnonzero(select(start, chunk))
                parts["index"].append(rows + start)
                for n in names:
                    parts[n].append(chunk[n][rows])
            yield {n: np.concatenate(v) if v else np.zeros(0, np.int64) for n, v in parts.items()}
            return
        bucket_dir = self.folder / f"buckets-{key}"
        bucket_dir.mkdir(exist_ok=True)
        for start, chunk in self.chunks(*names):
            rows = np.flatnonzero(select(start, chunk))
            which = (chunk[key][rows] >> shift).astype(np.int64)
            for b in np.unique(which):
                mine = rows[which == b]
                for n, values in (("index", (mine + start).astype(np.int64)), *((n, chunk[n][mine]) for n in names)):
                    with open(bucket_dir / f"{b}.{n}", "ab") as f:
                        values.tofile(f)
        for b in range(n_buckets):
            if (bucket_dir / f"{b}.index").exists():
                yield {
                    "index": np.fromfile(bucket_dir / f"{b}.index", dtype=np.int64),
                    **{n: np.fromfile(bucket_dir / f"{b}.{n}", dtype=_DTYPES[COLUMNS[n]]) for n in names},
                }
        for path in bucket_dir.iterdir():
            path.unlink()
        bucket_dir.rmdir()
