"""Training samples/s of the encoder recipe (`mmaff.baselines.encoder`: dynamic padding through
`DataCollatorWithPadding`, length-grouped batches) vs the same model in a plain `transformers` Trainer script with
default padding (every text padded to max_length by the tokenizer, random batches), on the same texts and steps.

    .venv/bin/python benchmarks/bench_encoder.py [--corpus data/mmaffin] [--task xed/EC] [--steps 40]

The model: a BERT of 4 layers, hidden 256 (BertConfig, random weights) with the WordPiece tokenizer trained
offline on the corpus (`mmaff.baselines.tiny_encoder`); the task's train texts repeated to `--rows`. One run each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def build_model(corpus: str, out: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    from mmaff.baselines.tiny_encoder import build_tiny_encoder

    build_tiny_encoder(corpus, out)
    config = BertConfig.from_pretrained(out)
    config.update({"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024})
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    return out


def recipe_samples_per_second(args: argparse.Namespace, model: Path, work: Path) -> float:
    from mmaff.baselines import data
    from mmaff.baselines.encoder import main

    original = data.split_examples

    def repeated(corpus_root, split, task):  # the train split repeated to --rows, as the plain script reads it
        examples = original(corpus_root, split, task)
        if split == "train":
            times = -(-args.rows // len(examples.ids))
            for name in ("ids", "texts", "golds", "templates"):
                setattr(examples, name, (getattr(examples, name) * times)[: args.rows])
        return examples

    data.split_examples = repeated
    import mmaff.baselines.encoder as encoder

    encoder.split_examples = repeated
    summary = main(
        ["--model_name_or_path", str(model), "--task", args.task, "--corpus", args.corpus, "--max_length", "256"]
        + ["--output_dir", str(work / "recipe"), "--max_steps", str(args.steps), "--per_device_train_batch_size"]
        + [str(args.batch), "--train_sampling_strategy", "group_by_length", "--use_cpu", "true", "--report_to", "none"]
        + ["--save_strategy", "no", "--logging_steps", "1000", "--seed", "0"]
    )
    return summary["train"]["train_samples_per_second"]


def plain_samples_per_second(args: argparse.Namespace, model: Path, work: Path) -> float:
    """What a plain fine-tuning script does: tokenizer(padding="max_length"), the default collator."""
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from mmaff.baselines.data import encoder_task, split_examples

    task = encoder_task(args.task)
    examples = split_examples(args.corpus, "train", task)
    times = -(-args.rows // len(examples.ids))
    texts = (examples.texts * times)[: args.rows]
    targets = (examples.targets(task) * times)[: args.rows]
    tokenizer = AutoTokenizer.from_pretrained(model)
    encoded = tokenizer(texts, truncation=True, max_length=256, padding="max_length")
    train = datasets.Dataset.from_dict({**encoded, "labels": targets})
    classifier = AutoModelForSequenceClassification.from_pretrained(
        model, num_labels=len(task.heads[0].labels), problem_type="multi_label_classification"
    )
    training_args = TrainingArguments(
        output_dir=str(work / "plain"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        seed=0,
    )
    result = Trainer(model=classifier, args=training_args, train_dataset=train).train()
    return result.metrics["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="data/mmaffin")
    parser.add_argument("--task", default="xed/EC")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1024)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(args.corpus, work / "model")
        plain = plain_samples_per_second(args, model, work)
        recipe = recipe_samples_per_second(args, model, work)
    print(f"plain Trainer (pad to max_length 256): {plain:.1f} samples/s")
    print(f"encoder recipe (dynamic padding, group_by_length): {recipe:.1f} samples/s")
    print(f"ratio: {recipe / plain:.2f}x")


if __name__ == "__main__":
    main()
