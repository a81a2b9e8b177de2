"""LLaMA-Factory's own dataset loader on `mmaff export llamafactory` (test tier `llamafactory`).

llamafactory pulls its own torch/transformers stack, so it lives in a separate venv:

    python3.11 -m venv /tmp/lf-venv && /tmp/lf-venv/bin/pip install llamafactory==0.9.5
    MMAFF_LLAMAFACTORY_PYTHON=/tmp/lf-venv/bin/python pytest -m llamafactory tests/test_llamafactory_interop.py

The test exports the bundled corpus, has that interpreter read every `dataset_info.json` entry with
`llamafactory.data.loader._load_single_dataset` (its file loader + sharegpt converter/aligner, `media_dir` left at
its default, the dataset_dir) and checks that every record comes out with our prompt, answer, system prompt and
media files. Also the format-level checks that need no llamafactory (placeholders, columns, determinism).
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmaff.encode.corpus import read_records
from mmaff.hub.export import content_string, export_llamafactory, main

# Runs inside the llamafactory interpreter: loads each entry as LLaMA-Factory does for training, writes the aligned
# rows (`_prompt`, `_response`, `_system`, `_images`, `_videos`) and the loading time as JSON.
_PROBE = """
import json, sys, time
from llamafactory.data.loader import _load_single_dataset
from llamafactory.data.parser import get_dataset_list
from llamafactory.hparams import DataArguments, ModelArguments
from transformers import Seq2SeqTrainingArguments

dataset_dir, names, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
data_args = DataArguments(dataset_dir=dataset_dir)
model_args = ModelArguments(model_name_or_path="unused")
training_args = Seq2SeqTrainingArguments(output_dir=out + ".trainer", report_to=[])
start = time.perf_counter()
loaded = {}
for name, attr in zip(names, get_dataset_list(names, dataset_dir)):
    loaded[name] = [dict(row) for row in _load_single_dataset(attr, model_args, data_args, training_args)]
with open(out, "w") as f:
    json.dump({"seconds": time.perf_counter() - start, "datasets": loaded}, f)
"""


def _llamafactory_python() -> str | None:
    given = os.environ.get("MMAFF_LLAMAFACTORY_PYTHON")
    if given:
        return given
    return sys.executable if importlib.util.find_spec("llamafactory") else None


@pytest.fixture(scope="module")
def export(sample_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lf") / "export"
    export_llamafactory(sample_corpus, out)
    return out


def _user_turn(record: dict) -> str:
    return content_string(next(m for m in record["messages"] if m["role"] == "user")["content"])


def test_export_rows_are_llamafactory_sharegpt(sample_corpus, export):
    info = json.loads((export / "dataset_info.json").read_text())
    assert info["meld_test"] == {
        "file_name": "meld_test.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "system": "system", "images": "images", "videos": "videos"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }
    # MMAFFBen's names where our records correspond (their recipe's --eval_dataset names), in their file order
    assert {"MELD_EC_test", "MELD_SP_test", "EMOTIC_EC_test", "EMOTIC_SI_test", "semeval2018_english_test"} <= set(
        info
    )
    assert info["CHSIMS_EI_test"] == info["CHSIMS_SI_test"]
    english = json.loads((export / info["semeval2018_english_test"]["file_name"]).read_text())
    order = ["EI-reg", "EI-oc", "V-oc", "V-reg", "E-c"]
    assert [order.index(r["subtask"]) for r in english] == sorted(order.index(r["subtask"]) for r in english)
    assert {r["subtask"] for r in english} == set(order)
    records = {r["id"]: r for r in read_records(sample_corpus, "test")}
    for row in json.loads((export / "emotic_test.json").read_text()):
        record = records[row["id"]]
        assert row["messages"][0]["content"].startswith("<image>Task:")
        assert row["messages"][0]["content"].count("<image>") == len(row["images"]) == 1
        assert row["messages"][0]["content"] == _user_turn(record)
        assert row["messages"][1] == {"role": "assistant", "content": record["messages"][-1]["content"][0]["text"]}
        assert row["system"] == record["messages"][0]["content"][0]["text"]
        assert filecmp.cmp(export / row["images"][0], sample_corpus / record["images"][0], shallow=False)


def test_export_is_deterministic_and_refuses_a_used_folder(sample_corpus, export, tmp_path, capsys):
    again = tmp_path / "again"
    export_llamafactory(sample_corpus, again)
    for path in sorted(export.rglob("*.json")):
        assert path.read_bytes() == (again / path.relative_to(export)).read_bytes(), path
    assert main(["llamafactory", str(sample_corpus), str(again)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {again}: exists and is not empty")
    assert main(["llamafactory", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


@pytest.mark.llamafactory
def test_llamafactory_loader_reads_every_entry(sample_corpus, export, tmp_path):
    python = _llamafactory_python()
    if python is None:
        pytest.skip(
            "llamafactory is not importable: install it in a separate venv (python3.11 -m venv /tmp/lf-venv && "
            "/tmp/lf-venv/bin/pip install llamafactory==0.9.5) and set MMAFF_LLAMAFACTORY_PYTHON=/tmp/lf-venv/bin/python"
        )
    info = json.loads((export / "dataset_info.json").read_text())
    result = tmp_path / "loaded.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"), "WANDB_DISABLED": "true"}
    run = subprocess.run(
        [python, "-c", _PROBE, str(export), ",".join(info), str(result)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads(result.read_text())
    records = {r["id"]: r for split in ("train", "validation", "test") for r in read_records(sample_corpus, split)}
    modalities = set()
    for name, entry in info.items():
        rows = json.loads((export / entry["file_name"]).read_text())
        aligned = loaded["datasets"][name]
        assert len(aligned) == len(rows), name  # nothing skipped as "abnormal"
        for row, got in zip(rows, aligned):
            record = records[row["id"]]
            modalities.add(record["modality"])
            assert got["_prompt"] == [{"role": "user", "content": _user_turn(record)}]
            assert got["_response"] == [{"role": "assistant", "content": record["messages"][-1]["content"][0]["text"]}]
            assert got["_system"] == record["messages"][0]["content"][0]["text"]
            for kind in ("images", "videos"):
                paths = got[f"_{kind}"] or []
                assert paths == [str(export / p) for p in record[kind]], (name, row["id"])
                assert all(filecmp.cmp(p, sample_corpus / q, shallow=False) for p, q in zip(paths, record[kind]))
    assert modalities == {"text", "image", "video"}
    ours = [name for name, entry in info.items() if not entry["file_name"].startswith("mmaffben/")]
    counts = {name: len(loaded["datasets"][name]) for name in ours}
    print(f"llamafactory loaded {sum(counts.values())} rows of {len(counts)} dataset x split entries "
          f"in {loaded['seconds']:.2f} s: {counts}")  # fmt: skip
