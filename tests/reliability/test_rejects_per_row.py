"""`rejects.jsonl` has one line per input row (listing the subtasks it would have fed), so that rows = written
primary records + capped + held out + excluded + rejected-row lines holds from the files alone, and the
manifest and the printed summary count the same lines. Details name files relative to the raw root."""

from __future__ import annotations

import re
import shutil
import types
from collections import Counter
from pathlib import Path

from helpers import Built, assert_accounting, build_datasets, write_mixture

from mmaff.data import card
from mmaff.data.build import SAMPLE_RAW, build, main
from mmaff.data.registry import DatasetSpec

MISSING_CLIP_ROW = ("meld/dev_sent_emo.csv", 4)  # dia1_utt7.mp4 is not in the sample's dev clips


def test_a_missing_clip_gives_one_line_for_its_row(tmp_path):
    shutil.copytree(SAMPLE_RAW / "meld", tmp_path / "here" / "meld")
    shutil.copytree(SAMPLE_RAW / "meld", tmp_path / "elsewhere" / "deeper" / "meld")
    built = build_datasets(tmp_path / "here", {"meld": {}}, raw_root=tmp_path / "here")
    lines = [r for r in built.rejects if (r["file"], r["line"]) == MISSING_CLIP_ROW]
    assert lines == [
        {
            "dataset": "meld",
            "file": "meld/dev_sent_emo.csv",
            "line": 4,
            "reason": "missing_media",
            "detail": "meld/dev_splits_complete/dia1_utt7.mp4",  # relative to the raw root, not absolute
            "excerpt": "I love this song!",
            "subtasks": ["EC", "SP", "EC+SP"],
            "ids": ["meld/en/EC/dev-dia1_utt7", "meld/en/SP/dev-dia1_utt7", "meld/en/EC+SP/dev-dia1_utt7"],
            "row_rejected": True,
        }
    ]
    assert len({(r["file"], r["line"]) for r in built.rejects}) == len(built.rejects)  # one line per row
    assert_accounting(built, "meld")
    assert built.manifest["totals"]["rejects"] == len(built.rejects)
    # the same inputs from another folder: byte-identical rejects, no trace of where the raw root was
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    other = build_datasets(tmp_path / "elsewhere", {"meld": {}}, raw_root=tmp_path / "elsewhere" / "deeper")
    assert (other.out / "rejects.jsonl").read_bytes() == (built.out / "rejects.jsonl").read_bytes()
    assert str(tmp_path).encode() not in (built.out / "rejects.jsonl").read_bytes()


def _mixed_builder(ctx):
    """MELD-shaped rows whose records fare differently: a derived record rejected while the primary is written,
    the primary rejected while the derived is written, and a row losing both in different passes."""
    rel = ctx.track(ctx.raw_dir / "train_sent_emo.csv")
    rows = [(2, "a", "happiness", "mixed"), (3, "b", "contempt", "positive"), (4, "c", "anger", "negative"),
            (5, "c", "anger", "mixed")]  # fmt: skip
    for line, source_id, emotion, sentiment in rows:
        yield from ctx.row_examples(
            {"EC": emotion, "SP": sentiment}, source_id=source_id, language="en", file=rel, line=line,
            text=f"line {line}", split="train",
        )  # fmt: skip


def test_a_row_line_lists_only_its_rejected_records(tmp_path, monkeypatch):
    raw = tmp_path / "raw" / "meld"
    raw.mkdir(parents=True)
    (raw / "train_sent_emo.csv").write_text("x\n", encoding="utf-8")
    monkeypatch.setattr(DatasetSpec, "builder_module", lambda self: types.SimpleNamespace(build=_mixed_builder))
    mixture = write_mixture(tmp_path / "mixture.yaml", {"meld": {"subtasks": ["EC", "SP"]}})
    for workers, out in ((1, "one"), (2, "two")):
        build(tmp_path / "raw", tmp_path / out, mixture, workers=workers, use_cache=False, log=lambda *_: None)
    assert (tmp_path / "one/rejects.jsonl").read_bytes() == (tmp_path / "two/rejects.jsonl").read_bytes()
    built = Built(tmp_path / "one")
    summary = [(r["line"], r["subtasks"], r["row_rejected"], r["reason"], r.get("reasons")) for r in built.rejects]
    assert summary == [
        (2, ["SP"], False, "label_not_in_label_set", None),  # EC written: the row counts as written
        (3, ["EC"], True, "label_not_in_label_set", None),  # SP written, but the row's primary is lost
        (5, ["EC", "SP"], True, "duplicate_id", ["duplicate_id", "label_not_in_label_set"]),
    ]
    assert built.rejects[2]["ids"] == ["meld/en/EC/c"]  # SP's record failed its check before it had an id
    assert sorted(built.records) == ["meld/en/EC/a", "meld/en/EC/c", "meld/en/SP/b", "meld/en/SP/c"]
    stats = built.files("meld")["meld/train_sent_emo.csv"]
    assert (stats["rows"], stats["written"], stats["derived_written"], stats["derived_rejected"]) == (4, 2, 2, 2)
    assert_accounting(built, "meld")
    assert built.manifest["totals"]["rejects"] == 3


def test_whole_sample_reject_lines_agree_with_manifest_summary_and_rows(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["--raw-root", str(SAMPLE_RAW), "--out", str(out), "--workers", "2", "--no-cache"]) == 0
    printed = capsys.readouterr().out
    built = Built(out)
    n_lines = len((out / "rejects.jsonl").read_bytes().splitlines())
    assert n_lines == len(built.rejects) == built.manifest["totals"]["rejects"]
    assert re.search(rf"wrote .* records, {n_lines} rejects\)", printed)
    per_dataset = Counter(r["dataset"] for r in built.rejects)
    table = card.summary_table(built.manifest).splitlines()
    for row in table[1:]:
        fields = row.split()
        if fields[1] == "built":
            assert int(fields[5]) == per_dataset[fields[0]], row  # the summary's rejects column
    assert card.summary_table(built.manifest) in printed
    row_lines = Counter((r["file"], r["row_rejected"]) for r in built.rejects)
    for dataset, info in built.manifest["datasets"].items():
        if info["status"] != "built":
            continue
        for rel, stats in info["files"].items():
            primary = [
                r for r in built.records.values() if r["source"]["file"] == rel and not r["source"].get("derived")
            ]
            counted = len(primary) + stats["capped"] + stats.get("held_out", 0) + stats["excluded_subtask"]
            assert stats["rows"] == counted + row_lines[rel, True], (dataset, rel)
    assert str(Path(SAMPLE_RAW).resolve()).encode() not in (out / "rejects.jsonl").read_bytes()
