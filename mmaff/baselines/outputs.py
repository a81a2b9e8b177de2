"""What the baselines write, in the formats `mmaff.score` reads, so every figure comes from the one scorer.

- Label scores (`mmaff.eval.likelihood`'s format, read by `read_label_scores`): one row per record,
  ``{"id", "prediction": {label: score}, "scoring": "label_likelihood", "model", "backend"}``. An encoder's scores
  are probabilities (sigmoid for multi-label, softmax for single-label), not log-likelihoods: the ranking metrics
  (AP-micro / AUC-micro / LRAP) depend only on the order of the scores, which the log keeps.
- Decisions as replies (`mmaff.eval.predictions` rows): the decided value rendered by the record's own template
  (`mmaff.data.answers.render_answer`, as the builder writes training answers), so the scorer parses it like a
  generated answer: ``{"id", "prediction": "3. anger, 6. disgust", "model", "backend"}``.
- The run file `<predictions>.run.json` (`mmaff.eval.predictions.write_run`): backend, model, corpus build,
  split, and under ``decoding`` how decisions were made (per-label thresholds and where they came from).

Files are written whole (temporary file + rename): a baseline predicts a split in one pass, and a rerun replaces
the earlier files rather than resuming into them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmaff.data.answers import render_answer
from mmaff.data.registry import Subtask
from mmaff.data.templates import load_template
from mmaff.eval.predictions import run_path, write_run

LABEL_SCORING = "label_likelihood"  # the row kind `mmaff.eval.likelihood.read_label_scores` accepts


def render_reply(template_name: str, subtask: Subtask, subtasks: dict[str, Subtask], value: Any) -> str:
    """`value` (a label, a list of labels, a number, {part: value} for a joint task) as the template that wrote
    the record's training answer renders it."""
    style, family = template_name.split("/", 1)
    template = load_template(family, style)
    return render_answer(value, template.answer_spec(subtask, subtasks), subtask.label_space(subtasks))


def _write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_label_scores(
    path: str | Path, ids: Sequence[str], labels: Sequence[str], scores: Any, *, model: str, backend: str
) -> None:
    """One label-score row per id; `scores` is an (items x labels) array in `labels` order."""
    rows = [
        {
            "id": item_id,
            "prediction": {label: float(value) for label, value in zip(labels, row, strict=True)},
            "scoring": LABEL_SCORING,
            "model": model,
            "backend": backend,
        }
        for item_id, row in zip(ids, scores, strict=True)
    ]
    _write_rows(Path(path), rows)


def write_replies(
    path: str | Path, ids: Sequence[str], replies: Sequence[str], run: dict[str, Any], *, model: str, backend: str
) -> None:
    """The predictions file (one rendered reply per id) and its run file; an earlier run's files are replaced."""
    path = Path(path)
    run_path(path).unlink(missing_ok=True)
    rows = [
        {"id": item_id, "prediction": reply, "model": model, "backend": backend}
        for item_id, reply in zip(ids, replies, strict=True)
    ]
    _write_rows(path, rows)
    write_run(path, run)
