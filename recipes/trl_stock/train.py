"""Feed a built corpus to TRL's own `SFTTrainer` (no mmaff trainer): text and image records, stock collator.

    python recipes/trl_stock/train.py --corpus data/mmaffin --model Qwen/Qwen2.5-VL-3B-Instruct \
        --output-dir outputs/trl-stock [--max-steps N] [--modalities text,image]

TRL's vision-language path (`DataCollatorForVisionLanguageModeling`) takes conversational rows: `messages` (our
records' messages, `{"type": "image"}` parts where the images go) and `images`, which it puts into those parts before
`processor.apply_chat_template` loads them. This script gives it absolute image paths, with images in a format the
image loader may refuse (BMP, TIFF: raw CFAPS/FER files) converted losslessly to PNG under `<output-dir>/images/`.
Video records are left out (and counted): TRL's SFT collator and data utilities handle no `videos` (see README).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmaff.encode.corpus import read_records

CONVERTED_SUFFIXES = {".bmp", ".tif", ".tiff"}


def loadable_image(path: Path, cache: Path) -> str:
    """An absolute path the processor's image loader reads: the file itself, or a PNG copy for BMP/TIFF."""
    if path.suffix.lower() not in CONVERTED_SUFFIXES:
        return str(path.resolve())
    from PIL import Image

    target = cache / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}-{path.stem}.png"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image.save(target, format="PNG")
    return str(target.resolve())


def stock_row(record: dict[str, Any], corpus: Path, cache: Path) -> dict[str, Any]:
    """A record as TRL's SFT collator takes it: `messages` with typed parts and `images` as absolute paths."""
    messages = [
        {
            "role": m["role"],
            "content": [
                {"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]}
                for p in m["content"]
            ],
        }  # fmt: skip
        for m in record["messages"]
    ]
    return {"messages": messages, "images": [loadable_image(corpus / p, cache) for p in record["images"]]}


def stock_rows(
    corpus: Path, split: str, cache: Path, modalities: Sequence[str] = ("text", "image")
) -> tuple[list[dict[str, Any]], Counter]:
    """TRL rows of one split, and the records left out per reason (video, or a modality not asked for)."""
    rows, skipped = [], Counter()
    for record in read_records(corpus, split):
        if record["videos"]:
            skipped["video (not supported by TRL's SFT collator)"] += 1
        elif record["modality"] not in modalities:
            skipped[f"{record['modality']} (not asked for)"] += 1
        else:
            rows.append(stock_row(record, corpus, cache))
    return rows, skipped


def train(corpus: Path, model: str, output_dir: Path, max_steps: int, modalities: Sequence[str]) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    rows, skipped = stock_rows(corpus, "train", output_dir / "images", modalities)
    for reason, n in sorted(skipped.items()):
        print(f"left out {n} records: {reason}")
    config = SFTConfig(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        max_length=None,  # truncation would cut image tokens (TRL raises on that); our prompts are short
        use_cpu=not _has_cuda(),
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SFTTrainer(
        model=AutoModelForImageTextToText.from_pretrained(model),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoProcessor.from_pretrained(model),
    )
    trainer.train()
    return trainer


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/mmaffin"), help="built corpus folder")
    parser.add_argument("--model", required=True, help="Qwen2.5-VL checkpoint folder or Hub id")
    parser.add_argument("--output-dir", type=Path, required=True, help="TRL output folder")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (-1: one epoch)")
    parser.add_argument("--modalities", default="text,image", help="comma list of text,image")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.json").is_file():
        print(f"error: --corpus {args.corpus}: no manifest.json; build it with `mmaff build`", file=sys.stderr)
        return 2
    modalities = [m for m in args.modalities.split(",") if m]
    if not set(modalities) <= {"text", "image"}:
        print(
            f"error: --modalities {args.modalities}: choose from text,image (TRL has no video path)", file=sys.stderr
        )
        return 2
    train(args.corpus, args.model, args.output_dir, args.max_steps, modalities)
    return 0


if __name__ == "__main__":
    sys.exit(main())
