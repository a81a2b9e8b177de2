"""The published corpus is immune to later edits of the raw tree, and the stage cache keys on content: an
in-place edit of a raw clip (same size, mtime put back) is rebuilt, never "reused"."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import orjson
import pytest
from helpers import write_mixture

from mmaff.data.build import SAMPLE_RAW, build

KEPT_CLIP = "meld/train_splits/dia0_utt0.mp4"  # a clip whose records the sample keeps


@pytest.fixture
def meld_raw(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE_RAW / "meld", tmp_path / "raw" / "meld")
    return tmp_path / "raw"


def _build(raw: Path, out: Path, mixture: Path) -> str:
    """Build with the stage cache on; returns meld's status (built / reused)."""
    log: list[str] = []
    build(raw, out, mixture, workers=1, use_cache=True, log=log.append)
    (line,) = [entry for entry in log if entry.split()[:1] == ["meld"]]
    return line.split()[1]


def _edit_in_place(path: Path, restore_mtime: bool = True) -> bytes:
    """Flip bytes inside the file without changing its size (and put its mtime back); returns the new bytes."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    with open(path, "r+b") as f:  # in place: same inode, as an editor or a re-download into the file would
        f.write(data)
    if restore_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino) == (before.st_size, before.st_ino)
    assert not restore_mtime or after.st_mtime_ns == before.st_mtime_ns
    return bytes(data)


def test_published_corpus_is_immune_to_raw_edits_and_the_rebuild_sees_them(tmp_path, meld_raw):
    mixture = write_mixture(tmp_path / "mixture.yaml", {"meld": {}})
    out = tmp_path / "corpus"
    assert _build(meld_raw, out, mixture) == "built"
    published = out / "media" / KEPT_CLIP
    original = published.read_bytes()
    assert original == (meld_raw / KEPT_CLIP).read_bytes()

    edited = _edit_in_place(meld_raw / KEPT_CLIP)
    assert published.read_bytes() == original  # (a) the corpus already published keeps its bytes

    new_out = tmp_path / "corpus2"
    assert _build(meld_raw, new_out, mixture) == "built"  # (b) the edit is seen, the stage is not reused
    rejects = [orjson.loads(line) for line in (new_out / "rejects.jsonl").read_bytes().splitlines()]
    rejected = any(r["file"] == "meld/train_sent_emo.csv" and r["line"] == 2 for r in rejects)
    assert rejected or (new_out / "media" / KEPT_CLIP).read_bytes() == edited
    assert published.read_bytes() == original  # the first corpus is still intact
    assert published.stat().st_ino != (meld_raw / KEPT_CLIP).stat().st_ino  # a copy, not a hard link


def test_content_edit_with_size_and_mtime_restored_is_rebuilt_but_a_touch_is_reused(tmp_path, meld_raw):
    mixture = write_mixture(tmp_path / "mixture.yaml", {"meld": {}})
    assert _build(meld_raw, tmp_path / "a", mixture) == "built"
    assert _build(meld_raw, tmp_path / "a", mixture) == "reused"
    os.utime(meld_raw / KEPT_CLIP, ns=(1, 1))  # stat changed, content not: re-hashed, same bytes -> reused
    assert _build(meld_raw, tmp_path / "a", mixture) == "reused"
    _edit_in_place(meld_raw / KEPT_CLIP)  # (c) same size, same mtime, same inode: only the content differs
    assert _build(meld_raw, tmp_path / "a", mixture) == "built"


def test_an_edit_of_the_published_corpus_does_not_poison_the_stage_cache(tmp_path, meld_raw):
    mixture = write_mixture(tmp_path / "mixture.yaml", {"meld": {}})
    out = tmp_path / "corpus"
    assert _build(meld_raw, out, mixture) == "built"
    _edit_in_place(out / "media" / KEPT_CLIP, restore_mtime=False)
    assert _build(meld_raw, out, mixture) == "built"
    assert (out / "media" / KEPT_CLIP).read_bytes() == (meld_raw / KEPT_CLIP).read_bytes()


def test_manifest_pins_every_media_file(tmp_path, meld_raw):
    mixture = write_mixture(tmp_path / "mixture.yaml", {"meld": {}})
    out = tmp_path / "corpus"
    _build(meld_raw, out, mixture)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    listing = (out / "media.sha256").read_bytes()
    assert manifest["outputs"]["media.sha256"]["sha256"] == hashlib.sha256(listing).hexdigest()
    assert manifest["datasets"]["meld"]["media"]["sha256"] == hashlib.sha256(listing).hexdigest()
    listed = {}
    for line in listing.decode().splitlines():
        digest, path = line.split("  ", 1)
        listed[path] = digest
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "media").rglob("*") if p.is_file())
    assert sorted(listed) == on_disk and len(on_disk) == manifest["datasets"]["meld"]["media"]["files"]
    for path, digest in listed.items():  # what `sha256sum -c media.sha256` checks
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == digest, path
