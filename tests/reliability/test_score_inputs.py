"""A prediction that is not text (null, a number, an object, a list with non-strings) is an error naming the
file and line, never scored as its JSON text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mmaff.eval.predictions import PredictionFileError
from mmaff.eval.score import read_replies

NOT_TEXT = [
    (None, "null"),
    (7, "7"),
    (3.5, "3.5"),
    (True, "true"),
    ({"joy": -1.5}, '{"joy": -1.5}'),
    (["1. joy", None], '["1. joy", null]'),
]


def _write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("prediction", "shown"), NOT_TEXT)
def test_non_text_prediction_is_an_error_naming_the_line(tmp_path, prediction, shown):
    rows = [
        {"id": "a", "prediction": "1. joy"},
        {"id": "b", "prediction": ["x", "y"]},
        {"id": "c", "prediction": prediction},
    ]
    path = _write_lines(tmp_path / "p.jsonl", rows)
    with pytest.raises(PredictionFileError) as caught:
        read_replies(path)
    message = str(caught.value)
    assert message == f"{path}:3: prediction must be a string or a list of strings (beams), got {shown}"
    assert read_replies(_write_lines(tmp_path / "ok.jsonl", rows[:2])) == {"a": "1. joy", "b": ["x", "y"]}


def test_cli_reports_one_line_not_a_traceback(tmp_path, sample_corpus):
    path = _write_lines(tmp_path / "p.jsonl", [{"id": "x", "prediction": None}])
    command = ["--predictions", str(path), "--corpus", str(sample_corpus), "--out", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-m", "mmaff.score", *command], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {path}:1: prediction must be a string or a list of strings (beams), got null"
    ]
    assert not (tmp_path / "out" / "metrics.json").exists()
