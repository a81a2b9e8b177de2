"""The same inputs give byte-identical corpora wherever they sit on disk, and nothing machine-specific (absolute
paths, host or user names) reaches the manifest, the dataset card, the records or the rejects."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import orjson
from helpers import write_mixture

from mmaff.data.build import ROOT, SAMPLE_RAW, build
from mmaff.data.registry import load_registry

# text, image and video datasets whose samples hold rejects (missing and broken media among them)
COPIED = ("goemotions", "semeval2018", "emotic", "cfaps", "meld")
MISSING = "xed"  # in the mixture, absent from the raw root: a "missing" message in manifest and card


def _copy_raw(target: Path) -> Path:
    registry = load_registry()
    for key in COPIED:
        shutil.copytree(SAMPLE_RAW / registry[key].raw_dir, target / registry[key].raw_dir)
    return target


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_inputs_elsewhere_give_the_same_bytes(tmp_path):
    raw_a = _copy_raw(tmp_path / "a" / "raw")
    raw_b = _copy_raw(tmp_path / "elsewhere" / "deeper" / "copy of raw")
    mixture = write_mixture(tmp_path / "mixture.yaml", dict.fromkeys((*COPIED, MISSING), {}))
    out_a, out_b = tmp_path / "out-a" / "corpus", tmp_path / "b" / "mmaffin"
    build(raw_a, out_a, mixture, workers=1, use_cache=False, log=lambda *_: None)
    build(raw_b, out_b, mixture, workers=2, use_cache=False, log=lambda *_: None)

    a, b = _tree_bytes(out_a), _tree_bytes(out_b)
    assert {"manifest.json", "README.md", "rejects.jsonl"} <= set(a)
    assert any(k.startswith("media/") for k in a) and any(k.startswith("train/") for k in a)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []

    manifest = orjson.loads(a["manifest.json"])
    assert manifest["datasets"][MISSING]["status"] == "missing"
    assert manifest["datasets"][MISSING]["message"].startswith(f"{load_registry()[MISSING].raw_dir} ")
    assert manifest["raw_root"] is None  # outside the project: not recorded
    assert orjson.loads(a["rejects.jsonl"].splitlines()[0])  # there are rejects to compare

    machine_specific = [str(tmp_path), str(ROOT), str(Path.home()), str(Path.home().resolve())]
    host = socket.gethostname()
    machine_specific += [host] if len(host) >= 4 else []
    for rel, data in a.items():
        if rel.endswith((".json", ".jsonl", ".md")):
            text = data.decode("utf-8")
            assert [s for s in machine_specific if s in text] == [], rel
