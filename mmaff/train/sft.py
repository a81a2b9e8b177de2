"""Supervised fine-tuning of Qwen2.5-VL on a built corpus: the one `main()` behind recipes/sft_*.py.

    accelerate launch --config_file ds_configs/accelerate/zero3.yaml recipes/sft_7b.py \
        --config recipes/qwen2.5-vl-7b/sft/config_full.yaml [--any_field value ...]

Arguments: defaults < YAML (`--config`) < command line, over four groups: `DataArguments` and
`TuningArguments` (mmaff.train.args), TRL's `SFTConfig` and `ModelConfig`. Three SFTConfig fields are served by
this script instead of TRL, which refuses them for vision data: `packing` (best-fit-decreasing packs of whole
samples up to `max_length` tokens, one padding-free row each), `padding_free` (one row per micro-batch) and
`push_to_hub`. The push works as the HF Trainer's (`hub_strategy` end / every_save / checkpoint / all_checkpoints,
background commits after each save, the token and repo checked at start-up) but sends our model card, never
`training_args.bin` (a pickle holding the token: the Trainer's own push uploads it), and no file holding the token.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import datasets
from transformers import TrainerCallback
from trl import ModelConfig, SFTConfig, TrlParser

from mmaff.encode.corpus import Corpus, open_corpus
from mmaff.encode.samples import SampleEncoder
from mmaff.hub.model_card import (
    STAGING,
    HubAccessError,
    SecretInUpload,
    check_hub_access,
    model_card,
    push_checkpoint_async,
    push_folder,
)
from mmaff.train.args import DataArguments, TuningArguments
from mmaff.train.checkpoints import ResumeNeeds, checkpoint_problem, newest_complete_checkpoint
from mmaff.train.collator import MixedModalCollator
from mmaff.train.data import (
    LengthReport,
    keep_fitting,
    load_split,
    pack,
    packed_dataset,
    samples_per_item,
    streamed_records,
)
from mmaff.train.model import (
    freeze_parts,
    load_model,
    load_processor,
    lora_config,
    merge_adapter,
    parameter_report,
    rewrite_in_hub_layout,
    upcast_trainable,
)
from mmaff.workers import stop_with_launcher

log = logging.getLogger("mmaff.sft")


@dataclass
class Served:
    """The SFTConfig switches this script implements itself (TRL's are turned off)."""

    packing: bool
    padding_free: bool
    push_to_hub: bool


def fail(message: str) -> NoReturn:
    """A mistake the run can name: one `error: ...` line, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def hub_strategy(args: SFTConfig) -> str:
    return str(getattr(args.hub_strategy, "value", args.hub_strategy))


def checked_hub_repo(args: SFTConfig, served: Served) -> str | None:
    """With `push_to_hub`, before any work (main process): the model repo (`hub_model_id`, else the output folder's
    name, as the HF Trainer names it) after checking the Hub is online, the token valid and allowed to write there
    (created if new, like the Trainer's start-up `create_repo`). A run that cannot push fails here, not after
    training."""
    if not served.push_to_hub or args.process_index != 0:
        return None
    repo = args.hub_model_id or Path(args.output_dir).absolute().name
    try:
        return check_hub_access(repo, token=args.hub_token, private=args.hub_private_repo, revision=args.hub_revision)
    except HubAccessError as error:
        fail(f"push_to_hub: {error}")


class HubCheckpointPush(TrainerCallback):
    """`hub_strategy` every_save / checkpoint / all_checkpoints: after each save (main process) the checkpoint's model
    files, and with the checkpoint strategies the whole checkpoint, go up in a background commit
    (`mmaff.hub.model_card.push_checkpoint_async`), as the HF Trainer's `_push_from_checkpoint` does; a save while the
    last push still runs is not pushed unless `hub_always_push`. A failed background push is logged, not fatal: the
    final push at the end is blocking and reports its errors."""

    def __init__(self, repo_id: str, strategy: str) -> None:
        self.repo_id, self.strategy = repo_id, strategy
        self.pending: list[Future] = []

    def on_save(self, args: SFTConfig, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._report_finished()
        if self.pending and not args.hub_always_push:
            log.info("the last checkpoint push is still running: checkpoint-%d is not pushed", state.global_step)
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        staging = Path(args.output_dir) / STAGING / checkpoint.name
        try:
            future = push_checkpoint_async(
                checkpoint,
                staging,
                self.repo_id,
                strategy=self.strategy,
                token=args.hub_token,
                revision=args.hub_revision,
            )
        except SecretInUpload as error:
            log.error("%s", error)
            return
        future.add_done_callback(lambda _: shutil.rmtree(staging, ignore_errors=True))
        self.pending.append(future)

    def on_train_end(self, args: SFTConfig, state: Any, control: Any, **kwargs: Any) -> None:
        if self.pending:
            log.info("waiting for %d checkpoint push(es) to finish", len(self.pending))
        for future in self.pending:
            future.exception()  # waits
        self._report_finished()

    def _report_finished(self) -> None:
        for future in [f for f in self.pending if f.done()]:
            self.pending.remove(future)
            if error := future.exception():
                log.warning("a checkpoint push failed (%s): the next save or the final push sends the model", error)
            else:
                log.info("pushed %s", getattr(future.result(), "commit_url", future.result()))


def default_recipe(recipes: Path, single_process: str) -> str:
    """The recipe a bare launch uses: full fine-tuning when several processes train, else `single_process`."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return str(recipes / f"config_{'full' if world_size > 1 else single_process}.yaml")


def parse(argv: list[str] | None = None, default_config: str | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if default_config and "--config" not in argv:
        argv = ["--config", default_config, *argv]
        print(f"no --config given: using {default_config}", file=sys.stderr)
    parser = TrlParser((DataArguments, TuningArguments, SFTConfig, ModelConfig))
    data_args, tuning, training_args, model_args = parser.parse_args_and_config(argv)
    recipe = argv[argv.index("--config") + 1] if "--config" in argv else None
    return data_args, tuning, training_args, model_args, recipe


def take_over(training_args: SFTConfig) -> Served:
    served = Served(
        packing=bool(training_args.packing),
        padding_free=bool(training_args.packing or training_args.padding_free),
        push_to_hub=bool(training_args.push_to_hub),
    )
    training_args.packing = False
    training_args.padding_free = False
    training_args.push_to_hub = False
    training_args.remove_unused_columns = False  # items are record lists, not columns
    training_args.dataset_kwargs = {"skip_prepare_dataset": True}
    if not training_args.dataloader_num_workers:
        training_args.dataloader_persistent_workers = False  # the DataLoader refuses it without workers
    return served


def last_complete_checkpoint(
    output_dir: str, needs: ResumeNeeds | None = None, warn: Callable[[str], None] = log.warning
) -> str | None:
    """The newest `checkpoint-N` a resume can load (mmaff.train.checkpoints); newer incomplete ones are warned of."""
    found = newest_complete_checkpoint(output_dir, needs or ResumeNeeds(), warn)
    return str(found) if found else None


def resume_checkpoint(args: SFTConfig, deepspeed: bool) -> str | None:
    """`--resume_from_checkpoint` if it is complete (else a one-line error), or the newest complete checkpoint."""
    needs = ResumeNeeds(deepspeed=deepspeed, optimizer=not args.save_only_model)
    if args.resume_from_checkpoint:
        if problem := checkpoint_problem(Path(args.resume_from_checkpoint), needs):
            raise SystemExit(f"error: --resume_from_checkpoint {args.resume_from_checkpoint}: {problem}")
        return args.resume_from_checkpoint
    quiet = args.process_index != 0  # every rank looks; one says what it skipped
    return last_complete_checkpoint(args.output_dir, needs, (lambda _: None) if quiet else log.warning)


def sample_lengths(table: datasets.Dataset, encoder: SampleEncoder, num_proc: int | None) -> list[int]:
    """Exact token count of every sample (tokenizer only; visual tokens come from the corpus)."""
    with_lengths = table.map(
        lambda batch: {"length": [encoder.length(dict(zip(batch, row))) for row in zip(*batch.values())]},
        batched=True,
        batch_size=256,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        desc="Counting tokens",
        keep_in_memory=True,  # never cached: the lengths depend on the tokenizer, which no fingerprint covers
        load_from_cache_file=False,
        new_fingerprint="mmaff-sample-lengths",
    )
    return list(with_lengths["length"])


def training_items(
    corpus: Corpus, data_args: DataArguments, encoder: SampleEncoder, args: SFTConfig, served: Served
) -> tuple[datasets.Dataset | datasets.IterableDataset, LengthReport | None]:
    if data_args.streaming:
        if args.max_steps <= 0:
            raise SystemExit("streaming needs max_steps > 0 (the length of a stream is not known in advance)")
        return streamed_records(corpus, data_args.train_split, data_args), None
    table = load_split(corpus, data_args.train_split, data_args, weighted=True)
    lengths = sample_lengths(table, encoder, args.dataset_num_proc)
    keep, report = keep_fitting(lengths, table, args.max_length)
    if served.packing:
        if args.max_length is None:
            raise SystemExit("packing needs max_length (the token budget of a packed row)")
        packs = [[keep[i] for i in p] for p in pack([lengths[i] for i in keep], args.max_length)]
    else:
        packs = [[row] for row in keep]
    return packed_dataset(table, packs), report


def eval_items(corpus: Corpus, data_args: DataArguments, encoder: SampleEncoder, args: SFTConfig) -> Any:
    if args.eval_strategy == "no" or not data_args.eval_split:
        return None
    table = load_split(corpus, data_args.eval_split, data_args, weighted=False)
    table = table.shuffle(seed=data_args.mixture_seed).select(
        range(min(len(table), data_args.max_eval_samples or len(table)))
    )
    keep, _ = keep_fitting(sample_lengths(table, encoder, None), table, args.max_length)
    return packed_dataset(table, [[row] for row in keep])


def set_global_batch(args: SFTConfig, data_args: DataArguments, items: Any, processes: int) -> None:
    """Gradient accumulation that makes `global_batch_size` samples per optimizer step (on average when packing)."""
    if not data_args.global_batch_size:
        return
    per_process = samples_per_item(items) * args.per_device_train_batch_size
    args.gradient_accumulation_steps = max(1, round(data_args.global_batch_size / (per_process * processes)))
    effective = per_process * processes * args.gradient_accumulation_steps
    if effective > 1.5 * data_args.global_batch_size:
        log.warning(
            "one micro-step already holds %.0f samples, more than global_batch_size %d: lower max_length (the pack "
            "budget) or per_device_train_batch_size to get closer",
            per_process * processes,
            data_args.global_batch_size,
        )
    log.info(
        "global batch %d samples: %.1f samples per micro-step x %d processes -> gradient_accumulation_steps %d",
        data_args.global_batch_size,
        per_process,
        processes,
        args.gradient_accumulation_steps,
    )


def main(argv: list[str] | None = None, default_config: str | None = None) -> None:
    stop_with_launcher()
    data_args, tuning, args, model_args, recipe = parse(argv, default_config)
    logging.basicConfig(
        level=logging.INFO if args.process_index == 0 else logging.WARNING, format="%(asctime)s %(name)s: %(message)s"
    )
    served = take_over(args)
    hub_repo = checked_hub_repo(args, served)  # before any loading: a run that cannot push fails at once
    deepspeed = bool(args.deepspeed) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    resume = resume_checkpoint(args, deepspeed)  # before any loading: a bad explicit checkpoint fails at once
    from mmaff.train.trainer import AffectSFTTrainer

    corpus = open_corpus(data_args.corpus, data_args.corpus_revision)
    processor = load_processor(model_args)
    encoder = SampleEncoder(processor, corpus.root, corpus.budget, data_args.video_decoder)
    train_items, report = training_items(corpus, data_args, encoder, args, served)
    processes = args.world_size
    set_global_batch(args, data_args, train_items, processes)
    if data_args.streaming:
        args.accelerator_config.dispatch_batches = False  # each rank encodes only its own share of the stream

    model = load_model(model_args)  # TRL runs training forwards with use_cache=False (packed rows need it)
    freeze_parts(model, tuning)
    if not model_args.use_peft and not deepspeed and upcast_trainable(model):
        log.info("trainable weights kept in float32 (no DeepSpeed fp32 master copy); bf16 autocast computes")
    vision_dummy = data_args.vision_dummy == "on" or (data_args.vision_dummy == "auto" and processes > 1)
    if vision_dummy and args.ddp_find_unused_parameters is None:
        args.ddp_find_unused_parameters = False  # every parameter is used each step: skip DDP's extra graph walk
    collator = MixedModalCollator(
        encoder, model.config, padding_free=served.padding_free, max_length=args.max_length, vision_dummy=vision_dummy
    )
    trainer = AffectSFTTrainer(
        model=model,
        args=args,
        train_dataset=train_items,
        eval_dataset=eval_items(corpus, data_args, encoder, args),
        processing_class=processor,
        data_collator=collator,
        peft_config=lora_config(model_args, tuning),
    )
    if hub_repo and hub_strategy(args) != "end":
        trainer.add_callback(HubCheckpointPush(hub_repo, hub_strategy(args)))
    output_dir = Path(args.output_dir)
    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        log.info("parameters: %s", json.dumps(parameter_report(trainer.model)))
        if report is not None:
            (output_dir / "data_report.json").write_text(json.dumps(report.as_dict(), indent=1) + "\n")
            log.info(
                "samples: %d kept, %d longer than max_length dropped (data_report.json)",
                report.kept,
                len(report.dropped),
            )

    if resume:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(args.output_dir)  # on every rank: under ZeRO-3 it gathers the shards collectively
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    trainer.save_state()
    processor.save_pretrained(args.output_dir)
    if trainer.is_deepspeed_enabled and not model_args.use_peft:
        rewrite_in_hub_layout(output_dir)
    method = "lora" if model_args.use_peft else "full"
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    card_args = dict(
        base_model=model_args.model_name_or_path,
        corpus=data_args.corpus,
        corpus_manifest=corpus.manifest,
        recipe=recipe,
        method=method,
        command=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)],
        results={"global_step": result.global_step, **metrics},
        data_report=report.as_dict() if report else None,
        secrets=[args.hub_token],
        dataset_id=data_args.dataset_hub_id,
    )
    (output_dir / "README.md").write_text(model_card(**card_args), encoding="utf-8")
    final = output_dir
    if model_args.use_peft and tuning.merge_lora:
        final = merge_adapter(model_args.model_name_or_path, output_dir, output_dir / "merged", model_args.dtype)
        (final / "README.md").write_text(model_card(**card_args, merged=True), encoding="utf-8")
        log.info("merged weights: %s", final)
    print(f"trainer state: {output_dir / 'trainer_state.json'}")
    if model_args.use_peft:
        print(f"adapter: {output_dir / 'adapter_model.safetensors'}")
    print(f"model: {final}")
    if hub_repo:
        shutil.rmtree(output_dir / STAGING, ignore_errors=True)
        try:
            url = push_folder(
                final, hub_repo, token=args.hub_token, revision=args.hub_revision, commit_message="End of training"
            )
        except SecretInUpload as error:
            fail(f"push_to_hub: {error}")
        log.info("pushed %s -> %s", final, url)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
