"""MASIVE's T5 / mT5 masked-span recipe (arXiv 2407.12196) over one YAML: Seq2SeqTrainer as its authors train it,
then beam-search predictions (5 beams, 5 returned) of the predict split that `mmaff.score` turns into Acc@1/3/5.

    accelerate launch recipes/seq2seq/train.py --config recipes/seq2seq/masive_mt5_large.yaml
    python -m mmaff.score --predictions <output_dir>/predictions.jsonl --corpus data/mmaffin --tasks masive/ASI
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmaff.baselines.seq2seq import BeamSettings, open_records, training_pairs, write_predictions


@dataclass
class Seq2SeqScriptArguments:
    model_name_or_path: str = field(metadata={"help": "a T5 / mT5 checkpoint (name or local path)"})
    corpus: str = field(metadata={"help": "a built corpus folder (make build-mmaffin)"})
    train_split: str = "train"
    eval_split: str | None = field(default="validation", metadata={"help": "null: no evaluation during training"})
    predict_split: str = "test"
    datasets: list[str] = field(default_factory=list, metadata={"help": "corpus files to read (default: all open)"})
    max_source_length: int = 512
    max_target_length: int = 128
    num_beams: int = 5
    num_return_sequences: int = 5
    max_new_tokens: int = 24
    predictions: str | None = field(default=None, metadata={"help": "default: <output_dir>/predictions.jsonl"})


def tokenized(records, tokenizer, args: Seq2SeqScriptArguments):
    from datasets import Dataset

    pairs = Dataset.from_list(list(training_pairs(records)))

    def encode(batch):
        inputs = tokenizer(batch["source"], truncation=True, max_length=args.max_source_length)
        labels = tokenizer(text_target=batch["target"], truncation=True, max_length=args.max_target_length)
        return {**inputs, "labels": labels["input_ids"]}

    return pairs.map(encode, batched=True, remove_columns=pairs.column_names)


def main(argv: Sequence[str] | None = None) -> None:
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )
    from trl import TrlParser

    parser = TrlParser((Seq2SeqScriptArguments, Seq2SeqTrainingArguments))
    args, training_args = parser.parse_args_and_config(argv)
    if not (Path(args.corpus) / "manifest.json").is_file():
        parser.error(f"--corpus {args.corpus}: no manifest.json; build it first (make build-mmaffin)")
    train_records = open_records(args.corpus, args.train_split, args.datasets)
    if not train_records:
        parser.error(f"--corpus {args.corpus}: no open-vocabulary (MASIVE) records in split {args.train_split}")
    eval_records = open_records(args.corpus, args.eval_split, args.datasets) if args.eval_split else []
    if not eval_records:
        training_args.eval_strategy = "no"
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model_name_or_path)
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_args,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        train_dataset=tokenized(train_records, tokenizer, args),
        eval_dataset=tokenized(eval_records, tokenizer, args) if eval_records else None,
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        settings = BeamSettings(
            num_beams=args.num_beams,
            num_return_sequences=args.num_return_sequences,
            max_new_tokens=args.max_new_tokens,
            max_source_length=args.max_source_length,
            batch_size=training_args.per_device_eval_batch_size,
        )
        out = args.predictions or str(Path(training_args.output_dir) / "predictions.jsonl")
        rows = write_predictions(trainer.model, tokenizer, args.corpus, args.predict_split, out, settings)
        print(f"seq2seq: {rows} predictions -> {out}")


if __name__ == "__main__":
    main()
