"""Encoder recipes (issue 15): any HF encoder, by Hub name or local path, fine-tuned on one corpus task with
transformers' `Trainer` (dynamic padding through `DataCollatorWithPadding`, length-grouped batches), then its
predictions on a split written in the scorer's formats (`mmaff.baselines.outputs`).

    accelerate launch recipes/encoder/train.py --config recipes/encoder/xlmr_large_synthetic.yaml [--field value ...]
    python -m mmaff.baselines.encoder --config ... --predict_only true --model_name_or_path PATH   # a released model

Heads (`mmaff.baselines.heads`): multi-label -> sigmoid + BCE, single-label and ordinal -> softmax + cross
entropy, real -> regression, joint -> `JointEncoder` (shared encoder, a head per part, loss = sum of parts).

Decisions. Single-label / ordinal: the argmax class. Real: the output clipped to the range. Multi-label: every
label whose probability reaches its threshold: 0.5 (``threshold_strategy: fixed``), or per label the threshold
that maximises that label's F1 on the validation split (``tuned``: candidates are 0.5 and the label's validation
probabilities; ties go to the one nearest 0.5; a label never positive in validation keeps 0.5). The thresholds
are recorded in the run file. No label reached: the label space's none label (SemEval's "neutral") where it has
one, else the top-scoring label (GoEmotions' "neutral" is a label of its own).

`predict_only`: no training; `model_name_or_path` is a sequence-classification checkpoint (a released one or this
recipe's output), its `config.id2label` mapped by name (case-insensitive) onto the task's labels; label sets that
differ are refused, naming the labels on each side. A joint model is saved as its state dict (model.safetensors,
no head config), so `predict_only` takes single-head checkpoints only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmaff.baselines.data import EncoderTask, Examples, Head, TaskError, encoder_task, split_examples

if TYPE_CHECKING:
    import torch

BACKEND = "encoder"


@dataclass
class EncoderArguments:
    model_name_or_path: str = field(
        default="xlm-roberta-large", metadata={"help": "An HF encoder: Hub name or local folder."}
    )
    task: str = field(default="synthetic_emotions/EC", metadata={"help": "The corpus task, <dataset>/<subtask>."})
    corpus: str = field(default="data/mmaffin", metadata={"help": "A built corpus folder (make build-mmaffin)."})
    train_split: str = field(default="train")
    validation_split: str = field(default="validation", metadata={"help": "Split the thresholds are tuned on."})
    predict_split: str = field(default="test", metadata={"help": "Split predicted and written for the scorer."})
    max_length: int = field(default=256, metadata={"help": "Tokens per text (longer texts are truncated)."})
    threshold_strategy: str = field(
        default="fixed",
        metadata={
            "help": "Multi-label decisions: fixed (0.5) or tuned (per label, F1 on the validation split).",
            "choices": ["fixed", "tuned"],
        },
    )
    predict_task: str | None = field(
        default=None,
        metadata={
            "help": "Predict the records of this task instead of `task`'s (zero-shot, arXiv 2604.12633: train on "
            "synthetic_emotions/EC, predict goemotions/EC; score with `python -m mmaff.baselines.zero_shot`). "
            "Replies and label scores stay in the trained task's label space."
        },
    )
    predict_only: bool = field(
        default=False, metadata={"help": "Evaluate model_name_or_path (a classification checkpoint) without training."}
    )
    predictions_dir: str | None = field(
        default=None,
        metadata={"help": "Where predictions.jsonl / label_scores.jsonl go (default: <output_dir>/predictions)."},
    )
    head_dropout: float = field(default=0.1, metadata={"help": "Dropout before the heads of a joint model."})


# ------------------------------------------------------------------------------------------ scores and decisions


def head_scores(head: Head, logits: np.ndarray) -> np.ndarray:
    """Logits of one head -> probabilities (sigmoid: multi, softmax: single / ordinal) or the value (real)."""
    if head.kind == "multi":
        return 1.0 / (1.0 + np.exp(-logits))
    if head.kind == "real":
        return logits[:, :1]
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _f1(predicted: np.ndarray, gold: np.ndarray) -> float:
    tp = float(np.sum(predicted & gold))
    denominator = float(np.sum(predicted) + np.sum(gold))
    return 2 * tp / denominator if denominator else 0.0


def tune_thresholds(probabilities: np.ndarray, gold: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per label, the threshold (predict p >= t) with the best F1 on these rows; ties -> nearest `default`."""
    thresholds = np.full(probabilities.shape[1], default)
    for j in range(probabilities.shape[1]):
        positives = gold[:, j].astype(bool)
        if not positives.any():
            continue
        candidates = sorted({default, *probabilities[:, j].tolist()}, key=lambda t: (abs(t - default), t))
        thresholds[j] = max(candidates, key=lambda t: _f1(probabilities[:, j] >= t, positives))
    return thresholds


def decide(head: Head, scores: np.ndarray, thresholds: np.ndarray | None = None) -> Any:
    """The decided value of one item from its head scores (see the module docstring)."""
    if head.kind == "multi":
        cut = np.full(len(head.labels), 0.5) if thresholds is None else thresholds
        chosen = [label for label, p, t in zip(head.labels, scores, cut, strict=True) if p >= t]
        if not chosen and not head.space.get("none"):
            chosen = [head.labels[int(np.argmax(scores))]]
        return chosen
    if head.kind == "real":
        return float(np.clip(scores[0], head.space["min"], head.space["max"]))
    label = head.labels[int(np.argmax(scores))]
    return int(label) if head.kind == "ordinal" else label


# ------------------------------------------------------------------------------------------------- models


def _num_labels(task: EncoderTask) -> int:
    return task.heads[0].width


def build_model(task: EncoderTask, args: EncoderArguments) -> torch.nn.Module:
    """A fresh head (or heads) on the encoder; the classifier config carries our label names."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from mmaff.baselines.heads import PROBLEM_TYPES, JointEncoder

    if task.joint:
        return JointEncoder(AutoModel.from_pretrained(args.model_name_or_path), task.heads, args.head_dropout)
    head = task.heads[0]
    return AutoModelForSequenceClassification.from_pretrained(
        args.model_name_or_path,
        num_labels=_num_labels(task),
        problem_type=PROBLEM_TYPES[head.kind],
        id2label=dict(enumerate(head.labels)),
        label2id={label: i for i, label in enumerate(head.labels)},
    )


def label_order(head: Head, id2label: dict[int, str], source: str) -> list[int]:
    """Column of each of our labels in a released model's output; label sets that differ are a `TaskError`."""
    if head.kind == "real":
        if len(id2label) != 1:
            raise TaskError(f"{source}: {len(id2label)} outputs; a {head.name} regression head has 1")
        return [0]
    theirs = {str(name).strip().lower(): int(i) for i, name in id2label.items()}
    ours = {label.lower() for label in head.labels}
    if set(theirs) != ours:
        raise TaskError(
            f"{source}: its config id2label does not match task {head.name}'s labels: only in the model "
            f"{sorted(set(theirs) - ours)}, only in the task {sorted(ours - set(theirs))}; evaluate it on a task "
            "with its label set (or a mapped one)"
        )
    return [theirs[label.lower()] for label in head.labels]


def load_released(task: EncoderTask, path: str) -> tuple[torch.nn.Module, list[int]]:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if task.joint:
        raise TaskError(f"--predict_only: {task.name} is joint; a released checkpoint has one head (give one part)")
    config = AutoConfig.from_pretrained(path)
    order = label_order(task.heads[0], {int(k): v for k, v in config.id2label.items()}, path)
    return AutoModelForSequenceClassification.from_pretrained(path), order


# ------------------------------------------------------------------------------------------------- main


def tokenized(tokenizer: Any, examples: Examples, task: EncoderTask | None, max_length: int) -> Any:
    """The examples as model inputs, with the `labels` column of `task` (None: inputs only, for prediction)."""
    import datasets

    encoded = tokenizer(examples.texts, truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict(dict(encoded) if task is None else {**encoded, "labels": examples.targets(task)})


def _logits(trainer: Any, data: Any, order: list[int] | None) -> np.ndarray:
    """Logits in `data`'s row order. Trainer's eval sampler follows `train_sampling_strategy`: under
    group_by_length it would return the rows permuted (length-grouped), no longer aligned with the ids."""
    strategy = trainer.args.train_sampling_strategy
    trainer.args.train_sampling_strategy = "sequential"
    try:
        logits = np.asarray(trainer.predict(data).predictions, dtype=np.float64)
    finally:
        trainer.args.train_sampling_strategy = strategy
    return logits if order is None else logits[:, order]


def _per_head(task: EncoderTask, logits: np.ndarray) -> list[np.ndarray]:
    edges = np.cumsum([0, *(head.width for head in task.heads)])
    return [head_scores(h, logits[:, a:b]) for h, a, b in zip(task.heads, edges[:-1], edges[1:], strict=True)]


def thresholds_for(
    task: EncoderTask, args: EncoderArguments, validation: Examples, validation_scores: list[np.ndarray] | None
) -> dict[str, np.ndarray]:
    thresholds = {}
    for i, head in enumerate(task.heads):
        if head.kind != "multi":
            continue
        if args.threshold_strategy == "tuned" and validation_scores is not None:
            gold = np.array([head.target(g if not task.joint else g[head.name]) for g in validation.golds])
            thresholds[head.name] = tune_thresholds(validation_scores[i], gold)
        else:
            thresholds[head.name] = np.full(len(head.labels), 0.5)
    return thresholds


def write_outputs(
    task: EncoderTask,
    args: EncoderArguments,
    examples: Examples,
    scores: list[np.ndarray],
    thresholds: dict[str, np.ndarray],
    out_dir: Path,
    run_extra: dict[str, Any],
) -> dict[str, Any]:
    from mmaff.baselines.outputs import render_reply, write_label_scores, write_replies
    from mmaff.eval.predictions import corpus_fingerprint

    model = args.model_name_or_path if args.predict_only else str(run_extra["output_dir"])
    replies = []
    for n, template in enumerate(examples.templates):
        if args.predict_task and args.predict_task != task.name:  # the trained task's answer format and labels
            template = f"{template.split('/', 1)[0]}/{task.subtask.template}"
        values = {h.name: decide(h, scores[i][n], thresholds.get(h.name)) for i, h in enumerate(task.heads)}
        value = values if task.joint else values[task.heads[0].name]
        replies.append(render_reply(template, task.subtask, task.spec.subtasks, value))
    decoding = {
        "decision": "per-head: multi-label thresholds, single-label argmax, real clipped to range",
        "threshold_strategy": args.threshold_strategy,
        "thresholds": {
            name: dict(zip(next(h for h in task.heads if h.name == name).labels, map(float, t), strict=True))
            for name, t in thresholds.items()
        },
    }
    run = {
        "backend": BACKEND,
        "model": model,
        **corpus_fingerprint(args.corpus),
        "split": args.predict_split,
        "decoding": decoding,
        "task": task.name,
        "predict_task": args.predict_task or task.name,
        "skipped_no_text": examples.skipped_no_text,
        "command": ["python", "-m", "mmaff.baselines.encoder", *sys.argv[1:]],
        **{k: v for k, v in run_extra.items() if k != "output_dir"},
    }
    predictions = out_dir / "predictions.jsonl"
    write_replies(predictions, examples.ids, replies, run, model=model, backend=BACKEND)
    written = {"predictions": str(predictions)}
    if not task.joint and task.heads[0].kind in ("multi", "single"):
        label_scores = out_dir / "label_scores.jsonl"
        write_label_scores(label_scores, examples.ids, task.heads[0].labels, scores[0], model=model, backend=BACKEND)
        written["label_scores"] = str(label_scores)
    return written


def check_model(args: EncoderArguments) -> None:
    """A missing local model folder is named before anything loads (a Hub name is left to `from_pretrained`)."""
    from mmaff.encode.corpus import looks_local

    path = args.model_name_or_path
    if Path(path).is_dir() or not (args.predict_only or looks_local(path)):
        return
    made_by = (
        "a classification checkpoint (this recipe's output_dir, or a released one)"
        if args.predict_only
        else ("an encoder folder or Hub name (make tiny-encoder writes outputs/tiny-encoder)")
    )
    raise TaskError(f"--model_name_or_path {path}: no such folder; give {made_by}")


def predict_task(task: EncoderTask, name: str | None) -> EncoderTask:
    """The task whose records are predicted: `task`, or another one predicted in `task`'s label space."""
    if not name or name == task.name:
        return task
    if task.joint or task.heads[0].kind not in ("multi", "single"):
        raise TaskError(
            f"--predict_task: only a multi- or single-label task predicts another's records, not {task.name}"
        )
    return encoder_task(name)


def run(args: EncoderArguments, training_args: Any) -> dict[str, Any]:
    """Train (unless `predict_only`), predict the predict split, write the scorer's files; returns a summary."""
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer

    from mmaff.encode.corpus import open_corpus

    corpus_root = open_corpus(args.corpus).root
    args.corpus = str(corpus_root)
    task = encoder_task(args.task)
    predicted = predict_task(task, args.predict_task)
    splits = {s: split_examples(corpus_root, s, task) for s in (args.train_split, args.validation_split)}
    train, validation = splits[args.train_split], splits[args.validation_split]
    test = splits[f"predict:{args.predict_split}"] = split_examples(corpus_root, args.predict_split, predicted)
    if not test.ids:
        raise TaskError(f"{args.corpus}: no {predicted.name} record with text in split {args.predict_split!r}")
    check_model(args)
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    order = None
    if args.predict_only:
        model, order = load_released(task, args.model_name_or_path)
    else:
        if not train.ids:
            raise TaskError(f"{args.corpus}: no {task.name} record with text in split {args.train_split!r}")
        model = build_model(task, args)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=None if args.predict_only else tokenized(tokenizer, train, task, args.max_length),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    summary: dict[str, Any] = {"task": task.name, "skipped_no_text": {s: e.skipped_no_text for s, e in splits.items()}}
    if not args.predict_only:
        result = trainer.train()
        summary["train"] = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        trainer.save_model(training_args.output_dir)
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(training_args.output_dir)
    validation_scores = None
    if args.threshold_strategy == "tuned" and validation.ids:
        validation_scores = _per_head(
            task, _logits(trainer, tokenized(tokenizer, validation, task, args.max_length), order)
        )
    thresholds = thresholds_for(task, args, validation, validation_scores)
    scores = _per_head(task, _logits(trainer, tokenized(tokenizer, test, None, args.max_length), order))
    if trainer.is_world_process_zero():
        out_dir = Path(args.predictions_dir or Path(training_args.output_dir) / "predictions")
        extra = {"output_dir": training_args.output_dir, "validation_items": len(validation.ids)}
        summary["written"] = write_outputs(task, args, test, scores, thresholds, out_dir, extra)
        print(json.dumps(summary))
    return summary


def parse_arguments(argv: Sequence[str] | None = None) -> tuple[EncoderArguments, Any]:
    """`--config recipe.yaml` (TrlParser: YAML < command line, unknown keys refused) into our and Trainer's args."""
    from transformers import TrainingArguments
    from trl import TrlParser

    parser = TrlParser((EncoderArguments, TrainingArguments))
    args, training_args = parser.parse_args_and_config(None if argv is None else list(argv))
    if args.threshold_strategy not in ("fixed", "tuned"):
        raise TaskError(f"--threshold_strategy {args.threshold_strategy!r}: use fixed or tuned")
    return args, training_args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, training_args = parse_arguments(argv)
    return run(args, training_args)


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli

    run_cli(main, extra=(TaskError,))
