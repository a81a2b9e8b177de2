"""Generation over corpus records: Hugging Face (batched, data-parallel), OpenAI-compatible servers, vLLM offline.

The OpenAI-compatible client lives in `mmaff.eval.openai_backend`, the helpers all backends share in
`mmaff.eval.backend_common`.

Conventions shared by every backend:

* Prompt: the record's messages without the final assistant turn (the gold answer), rendered with the model's
  chat template and ``add_generation_prompt=True`` (servers apply their own template to the same messages).
* Decoding: the task's (`mmaff.eval.tasks`: ``generation`` in `eval/tasks/`, defaults per target type in
  `eval/tasks/_defaults.yaml`): greedy (``do_sample=False``; ``temperature=0`` on servers) with the task's
  ``max_new_tokens``, or beam search returning the ``num_return_sequences`` best beams, ranked (MASIVE's Acc@k);
  no sampling knobs, no repetition penalty. ``--max-new-tokens`` / ``--num-beams`` / ``--num-return-sequences``
  override every task for a run. The run file records the decoding of each task the run covers, as the backend
  applies it (servers without beam search give one greedy reply: recorded so).
* Media: loaded as in training, under the corpus's pixel and frame budgets (the HF backend reuses the training
  `SampleEncoder`: its budgeted processors and its image / video loading with the real-fps `VideoMetadata`).
* Prompts longer than ``max_prompt_tokens`` are counted and logged, never truncated (MMAFFBen's cutoff cut the
  instruction and the assistant header off the end of long prompts).
* Output: raw text with special tokens skipped, stripped; keyed by record id in a `PredictionWriter` file
  (`mmaff.eval.predictions`), written as soon as its batch finishes, so a rerun resumes where a killed run stopped.

HF batching: records are grouped by decoding settings (one ``generate`` call per batch), sorted by prompt
length inside a group (less padding; longest first, so memory errors surface early), and LEFT-padded; the
model's mRoPE positions skip the padding (attention mask), so a record's greedy output does not depend on its
batch: batch 1 and batch N give identical text (checked by the tests on CPU float32; on GPU in bf16, kernels that
change with the batch shape can flip near-ties).

Data parallel: ``accelerate launch -m mmaff.eval.generate ...`` shards the records by rank over the sorted ids; rank k
writes ``<out stem>.rank<k>.jsonl`` and rank 0 merges all shards by id into ``out`` at the end.

Run: ``python -m mmaff.eval.generate --backend hf --model PATH --corpus data/mmaffin --split test --out preds.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mmaff.data.media import MediaBudget
from mmaff.encode.media_loader import MediaLoader
from mmaff.eval.backend_common import Prediction, decoding_of, prompt_messages, task_decodings, video_media
from mmaff.eval.openai_backend import SERVER_BEAM_SEARCH, VIDEO_MODES, APIError, OpenAIChatGenerator
from mmaff.eval.predictions import PredictionWriter, check_run, corpus_fingerprint, done_ids, merge_shards, write_run
from mmaff.eval.tasks import Decoding, record_task
from mmaff.redact import redact_command

if TYPE_CHECKING:  # torch / transformers are imported where they are needed (the server client needs neither)
    import torch

    from mmaff.encode.samples import Sample

log = logging.getLogger(__name__)

DEFAULT_MAX_PROMPT_TOKENS = 4096  # MMAFFBen's cutoff_len: longer prompts are counted, not cut


class Backend(Protocol):
    """A generation backend: yields batches of predictions as they finish, in any order."""

    name: str
    model_name: str
    decoding: dict[str, Any]  # the run-wide settings that decide the outputs (recorded in the run file)

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]: ...


def task_settings(backend: Backend, task: str) -> dict[str, Any] | None:
    """The decoding a generating backend applies to `task` (its ``decoding_for``), for the run file; None for a
    backend without per-task decoding (label likelihoods)."""
    decoding_for = getattr(backend, "decoding_for", None)
    return decoding_for(task) if decoding_for is not None else None


# ------------------------------------------------------------------------------------------------ the driver


@dataclass
class GenerateReport:
    total: int
    skipped: int  # already in the predictions file
    written: int
    seconds: float
    too_long: list[str] = field(default_factory=list)  # ids whose prompt exceeded the backend's limit (not cut)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "too_long": len(self.too_long), "too_long_ids": self.too_long[:50]}


def prediction_row(prediction: Prediction, backend: Backend) -> dict[str, Any]:
    return {
        "id": prediction.id,
        "prediction": prediction.text,
        "model": backend.model_name,
        "backend": backend.name,
        "seconds": round(prediction.seconds, 4),
        **prediction.extra,
    }


def generate(
    records: Sequence[dict[str, Any]],
    backend: Backend,
    writer: PredictionWriter,
    *,
    skip_done: bool = True,
    also_done: set[str] | None = None,
    progress: bool = True,
) -> GenerateReport:
    """Stream the records through the backend, writing each batch of predictions as soon as it finishes.

    Ids already in the writer's file (or in `also_done`) are skipped; with ``skip_done=False`` they are an error
    instead (a predictions file never holds an id twice). `progress`: a progress bar (items/s, ETA) on a terminal."""
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"duplicate record ids: {dupes[:10]}")
    done = writer.done | (also_done or set())
    todo = [r for r in records if r["id"] not in done]
    if not skip_done and len(todo) != len(records):
        raise ValueError(f"{writer.path} already holds {len(records) - len(todo)} of these ids (skip_done=False)")
    start, written = time.perf_counter(), 0
    with progress_bar(len(todo), backend.name, enabled=progress) as bar:
        for batch in backend.predict(todo):
            written += writer.write(prediction_row(p, backend) for p in batch)
            bar.update(len(batch))
    return GenerateReport(
        total=len(records),
        skipped=len(records) - len(todo),
        written=written,
        seconds=time.perf_counter() - start,
        too_long=list(getattr(backend, "too_long", [])),
    )


def progress_bar(total: int, desc: str, *, enabled: bool = True) -> Any:
    """A tqdm bar with items/s and ETA; off when not `enabled` (ranks other than 0) and when stderr is no
    terminal (``disable=None``: logs stay free of bar redraws)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=None if enabled else True, dynamic_ncols=True)


def shard_records(records: Sequence[dict[str, Any]], rank: int, world: int) -> list[dict[str, Any]]:
    """Rank `rank`'s share: every `world`-th record of the records sorted by id (same split on every rank)."""
    return sorted(records, key=lambda r: r["id"])[rank::world]


def shard_path(out: str | Path, rank: int) -> Path:
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.rank{rank}.jsonl")


def shard_paths(out: str | Path) -> list[Path]:
    """Existing shard files of `out`, from runs with any number of processes."""
    return sorted(shard_path(out, 0).parent.glob(shard_path(out, 0).name.replace(".rank0.", ".rank*.")))


def distributed_state() -> Any:
    """accelerate's `PartialState`, on CPU-only machines with ``cpu=True`` so that torchrun's ranks join a gloo
    group (without it each CPU rank runs alone as rank 0 of 1). Checks that every launched process is a rank."""
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise RuntimeError(f"{launched} processes were launched but accelerate sees {state.num_processes} ranks")
    return state


def generate_data_parallel(
    records: Sequence[dict[str, Any]], backend: Backend, out: str | Path, *, skip_done: bool = True, state: Any = None
) -> GenerateReport:
    """Data-parallel `generate` under accelerate: each rank predicts its shard into its own file; rank 0 merges.

    Ids done by an earlier run (any shard file, any process count, or the merged `out`) are skipped. The shard is
    taken before skipping, so ranks never disagree on who owns an id."""
    state = state or distributed_state()
    out = Path(out)
    earlier = set().union(*(done_ids(p) for p in [*shard_paths(out), out] if p.exists()))
    mine = shard_records(records, state.process_index, state.num_processes)
    state.wait_for_everyone()  # every rank has read the earlier files before any rank appends
    with PredictionWriter(shard_path(out, state.process_index)) as writer:
        report = generate(
            mine,
            backend,
            writer,
            skip_done=skip_done,
            also_done=earlier - writer.done,
            progress=state.is_main_process,  # one bar (rank 0's shard), not one per rank
        )
    state.wait_for_everyone()
    if state.is_main_process:
        merge_shards([*shard_paths(out), *([out] if out.exists() else [])], out)
    state.wait_for_everyone()
    return report


# ------------------------------------------------------------------------------------------ Hugging Face backend


class HFGenerator:
    """Batched generation with a transformers Qwen2.5-VL checkpoint (see the module docstring), each record with
    its task's decoding (`decodings`: task name -> `Decoding`; the task files' when None). A task with
    ``num_beams`` > 1 and ``num_return_sequences`` = k gets the k best beams, ranked (MASIVE-style Acc@k)."""

    name = "hf"

    def __init__(
        self,
        model_path: str | Path,
        corpus_root: str | Path,
        budget: MediaBudget,
        *,
        batch_size: int = 8,
        dtype: str | torch.dtype = "auto",
        device: str | torch.device | None = None,
        decoder: str = "auto",
        decodings: Mapping[str, Decoding] | None = None,
        max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
        prefetch: bool = True,
        attn_implementation: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from mmaff.encode.samples import SampleEncoder

        self.model_name = str(model_path)
        self.batch_size, self.max_prompt_tokens, self.prefetch = batch_size, max_prompt_tokens, prefetch
        self.decodings = dict(task_decodings() if decodings is None else decodings)
        processor = AutoProcessor.from_pretrained(model_path)
        self.encoder = SampleEncoder(processor, corpus_root, budget, decoder)  # sets the corpus's pixel budgets
        self.tokenizer = processor.tokenizer
        self.device = torch.device(device) if device is not None else distributed_state().device
        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype)
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype, **kwargs)
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.decoding = {
            "do_sample": False,
            "repetition_penalty": 1.0,
            "dtype": str(self.model.dtype).removeprefix("torch."),
        }
        self.too_long: list[str] = []
        self._tokenizer_lock = threading.Lock()  # media are encoded in a prefetch thread, text decoded here

    # -- prompts -------------------------------------------------------------------------------------------------
    def render(self, record: dict[str, Any]) -> str:
        return self.encoder.processor.apply_chat_template(
            prompt_messages(record), tokenize=False, add_generation_prompt=True
        )

    def encode(self, record: dict[str, Any]) -> Sample:
        """The prompt as model inputs, media loaded and processed exactly as the training encoder does."""
        from mmaff.encode.samples import EncodingError

        enc = self.encoder
        images, videos = enc.media.load(record)
        with self._tokenizer_lock:
            sample = enc.process(record["id"], [(self.render(record), False)], images, videos)
        visual = int((sample.mm_token_type_ids > 0).sum())
        if visual != record["visual_tokens"]:
            raise EncodingError(
                f"{record['id']}: {visual} visual tokens, the corpus recorded {record['visual_tokens']} "
                f"(other media budgets than {enc.budget}?)"
            )
        if len(sample) > self.max_prompt_tokens:
            self.too_long.append(record["id"])
            log.warning("%s: prompt of %d tokens > %d (kept whole)", record["id"], len(sample), self.max_prompt_tokens)
        return sample

    # -- batching ------------------------------------------------------------------------------------------------
    def decoding_of(self, record: dict[str, Any]) -> Decoding:
        return decoding_of(self.decodings, record)

    def decoding_for(self, task: str) -> dict[str, Any]:
        """What the run file records for `task`: its decoding, applied as is."""
        return self.decodings[task].as_dict()

    def batches(self, records: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Batches of records with the same decoding, longest prompts first (ties by id), at most `batch_size`."""
        groups: dict[Decoding, list[tuple[int, str, dict[str, Any]]]] = {}
        for record in records:
            key = (-self.encoder.length(record), record["id"], record)
            groups.setdefault(self.decoding_of(record), []).append(key)
        batches = []
        for decoding in sorted(groups):
            ordered = [record for *_, record in sorted(groups[decoding], key=lambda k: k[:2])]
            batches.extend(ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size))
        return batches

    def collate(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        """LEFT-padded batch: pad tokens, attention mask 0 and token type 0 (text) before each shorter prompt."""
        import torch

        from mmaff.encode.samples import MEDIA_TENSORS

        width = max(len(s) for s in samples)

        def left(values: torch.Tensor, fill: int) -> torch.Tensor:
            return torch.cat([torch.full((width - values.numel(),), fill, dtype=values.dtype), values])

        batch = {
            "input_ids": torch.stack([left(s.input_ids, self.tokenizer.pad_token_id) for s in samples]),
            "attention_mask": torch.stack([left(torch.ones(len(s), dtype=torch.long), 0) for s in samples]),
            "mm_token_type_ids": torch.stack([left(s.mm_token_type_ids, 0) for s in samples]),
        }
        for name in MEDIA_TENSORS:
            parts = [getattr(s, name) for s in samples if getattr(s, name) is not None]
            if parts:
                batch[name] = torch.cat(parts)
        return {name: value.to(self.device) for name, value in batch.items()}

    # -- generation ----------------------------------------------------------------------------------------------
    def _encode_batch(self, records: list[dict[str, Any]]) -> tuple[list[Sample], float]:
        start = time.perf_counter()
        return [self.encode(r) for r in records], time.perf_counter() - start

    def generate_batch(
        self, records: list[dict[str, Any]], samples: list[Sample] | None = None, encode_seconds: float = 0.0
    ) -> list[Prediction]:
        """Greedy (or beam) decoding of one batch of records of one decoding (encoded here unless given)."""
        import torch

        if samples is None:
            samples, encode_seconds = self._encode_batch(records)
        start = time.perf_counter()
        inputs = self.collate(samples)
        width = inputs["input_ids"].shape[1]
        decoding = self.decoding_of(records[0])
        if any(self.decoding_of(r) != decoding for r in records):
            raise ValueError("a batch must hold records of one decoding (see `batches`)")
        limit = decoding.max_new_tokens
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=limit,
                do_sample=False,
                num_beams=decoding.num_beams,
                num_return_sequences=decoding.num_return_sequences,
                temperature=None,
                top_p=None,
                top_k=None,
                repetition_penalty=1.0,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, width:].cpu()
        with self._tokenizer_lock:
            texts = [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        seconds = (time.perf_counter() - start + encode_seconds) / len(records)
        k = decoding.num_return_sequences
        predictions = []
        for i, (record, sample) in enumerate(zip(records, samples)):
            finish = "stop" if self.eos_ids.intersection(new[i * k].tolist()) else "length"
            text: str | list[str] = texts[i * k : (i + 1) * k] if k > 1 else texts[i]
            extra = {"finish": finish, "max_new_tokens": limit, "prompt_tokens": len(sample), "batch": len(records)}
            predictions.append(Prediction(record["id"], text, seconds, extra))
        return predictions

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]:
        """Batches in `batches` order; the next batch's media are loaded in a thread while this one generates."""
        batches = self.batches(records)
        if not self.prefetch:
            for batch in batches:
                yield self.generate_batch(batch)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            upcoming: Future | None = pool.submit(self._encode_batch, batches[0]) if batches else None
            for i, batch in enumerate(batches):
                samples, encode_seconds = upcoming.result()
                upcoming = pool.submit(self._encode_batch, batches[i + 1]) if i + 1 < len(batches) else None
                yield self.generate_batch(batch, samples, encode_seconds)


# ------------------------------------------------------------------------------------------------ vLLM offline


DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's own default


def vllm_engine_kwargs(
    model_path: str | Path,
    budget: MediaBudget,
    *,
    max_images: int = 1,
    max_videos: int = 1,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_model_len: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM(...)``: the model, the corpus's image pixel budget as processor
    kwargs, media per prompt, parallelism and memory; `max_model_len` only when given (vLLM: the model's)."""
    pixels = {"min_pixels": budget.image_min_pixels, "max_pixels": budget.image_max_pixels}
    kwargs = {
        "model": str(model_path),
        "limit_mm_per_prompt": {"image": max_images, "video": max_videos},
        "mm_processor_kwargs": {**pixels, **extra.pop("mm_processor_kwargs", {})},
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        **extra,
    }
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    return kwargs


def vllm_params(vllm: Any, decoding: Decoding) -> Any:
    """A task's decoding as vLLM parameters: ``BeamSearchParams`` (for ``LLM.beam_search``) when it asks for
    beams, else greedy ``SamplingParams`` (temperature 0), each with the task's ``max_new_tokens``."""
    if decoding.num_beams > 1:
        return vllm.sampling_params.BeamSearchParams(beam_width=decoding.num_beams, max_tokens=decoding.max_new_tokens)
    return vllm.SamplingParams(temperature=0.0, max_tokens=decoding.max_new_tokens, n=1)


class VLLMGenerator:
    """vLLM's offline engine (GPU only; not installed by requirements.txt; the CPU tests run it against a fake
    `vllm` module, so the calls follow vLLM's documented offline API but are unverified on a real engine).

    Same prompts (the model's chat template), media (the corpus's frames with their real-fps metadata, the corpus
    pixel budgets as processor kwargs) and decoding as the HF backend: each task's ``max_new_tokens``; greedy
    (``SamplingParams(temperature=0)``) or, for a task asking for beams, ``LLM.beam_search`` with
    ``BeamSearchParams(beam_width=num_beams)``, whose ``num_return_sequences`` best beams are returned ranked.
    vLLM schedules its own batches (continuous batching), so chunks of `chunk_size` records are handed over at
    once and written when the chunk finishes (vLLM's own bar shows the chunk's progress). Videos go as
    ``(frames, metadata)`` with ``do_sample_frames=False``. vLLM applies one processor configuration to every
    request, so check that its video frames get the corpus's per-frame budget (``prompt_tokens`` in the rows vs.
    the corpus's ``visual_tokens``). Engine options (`vllm_engine_kwargs`): ``tensor_parallel_size``,
    ``gpu_memory_utilization``, ``max_model_len``, anything else passed through to ``vllm.LLM``."""

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        corpus_root: str | Path,
        budget: MediaBudget,
        *,
        decoder: str = "auto",
        decodings: Mapping[str, Decoding] | None = None,
        chunk_size: int = 512,
        show_progress: bool = True,
        **engine: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                "the vLLM backend needs vLLM: `pip install vllm` on a CUDA GPU machine (it is not in "
                "requirements.txt); use --backend hf on CPU"
            ) from err
        from transformers import AutoProcessor

        self.vllm = vllm
        self.model_name = str(model_path)
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.media = MediaLoader(corpus_root, budget, decoder)
        self.decodings = dict(task_decodings() if decodings is None else decodings)
        self.decoding = {"temperature": 0}
        self.chunk_size, self.show_progress = chunk_size, show_progress
        self.too_long: list[str] = []
        self.llm = vllm.LLM(**vllm_engine_kwargs(model_path, budget, **engine))

    def decoding_for(self, task: str) -> dict[str, Any]:
        return self.decodings[task].as_dict()  # applied as asked: beams through LLM.beam_search

    def render(self, record: dict[str, Any]) -> str:
        return self.processor.apply_chat_template(prompt_messages(record), tokenize=False, add_generation_prompt=True)

    def request(self, record: dict[str, Any]) -> dict[str, Any]:
        prompt = self.render(record)
        data: dict[str, Any] = {}
        if record["images"]:
            data["image"] = [self.media.image(p) for p in record["images"]]
        if record["videos"]:
            videos = []
            for path, info in zip(record["videos"], video_media(record)):
                frames, meta = self.media.video(path, info)
                metadata = {
                    "fps": meta.fps,
                    "total_num_frames": meta.total_num_frames,
                    "frames_indices": list(meta.frames_indices),
                    "duration": meta.total_num_frames / meta.fps,
                    "do_sample_frames": False,
                    "video_backend": "opencv",
                }
                videos.append((frames, metadata))
            data["video"] = videos
        return {"prompt": prompt, "multi_modal_data": data} if data else {"prompt": prompt}

    def _greedy(self, records: Sequence[dict[str, Any]]) -> list[Prediction]:
        params = [vllm_params(self.vllm, decoding_of(self.decodings, r)) for r in records]
        start = time.perf_counter()
        outputs = self.llm.generate([self.request(r) for r in records], params, use_tqdm=self.show_progress)
        seconds = (time.perf_counter() - start) / len(records)
        return [
            Prediction(
                r["id"],
                o.outputs[0].text.strip(),
                seconds,
                {"finish": o.outputs[0].finish_reason, "prompt_tokens": len(o.prompt_token_ids or [])},
            )
            for r, o in zip(records, outputs)
        ]

    def _completion(self, tokens: Sequence[int], prompt: str) -> str:
        """A beam's reply: ``LLM.beam_search`` returns sequences holding the prompt's tokens (its text decodes
        prompt and reply together), so the reply is decoded from the tokens after the prompt."""
        tokenizer = self.processor.tokenizer
        prompt_length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return tokenizer.decode(list(tokens)[prompt_length:], skip_special_tokens=True).strip()

    def _beams(self, records: Sequence[dict[str, Any]], decoding: Decoding) -> list[Prediction]:
        requests = [self.request(r) for r in records]
        start = time.perf_counter()
        outputs = self.llm.beam_search(requests, vllm_params(self.vllm, decoding))
        seconds = (time.perf_counter() - start) / len(records)
        predictions = []
        for record, request, output in zip(records, requests, outputs):
            beams = output.sequences[: decoding.num_return_sequences]
            texts = [self._completion(beam.tokens, request["prompt"]) for beam in beams]
            text = texts if decoding.num_return_sequences > 1 else texts[0]
            predictions.append(Prediction(record["id"], text, seconds, {"beams": decoding.num_beams}))
        return predictions

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]:
        """Chunks of records; in each, the greedy ones in one ``generate`` call, the beam ones in one
        ``beam_search`` call per decoding (``BeamSearchParams`` are per call)."""
        for i in range(0, len(records), self.chunk_size):
            chunk = records[i : i + self.chunk_size]
            by_decoding: dict[Decoding, list[dict[str, Any]]] = {}
            for record in chunk:
                by_decoding.setdefault(decoding_of(self.decodings, record), []).append(record)
            greedy = [r for d, rs in by_decoding.items() if d.num_beams == 1 for r in rs]
            if greedy:
                yield self._greedy(greedy)
            for decoding, beam_records in by_decoding.items():
                if decoding.num_beams > 1:
                    yield self._beams(beam_records, decoding)


# ---------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    from mmaff.eval.cli_common import HelpFormatter, add_comma_list

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--backend", choices=("hf", "openai", "vllm"), default="hf", help="generation backend")
    parser.add_argument("--model", required=True, help="checkpoint folder / Hub id (hf, vllm) or served model name")
    parser.add_argument("--corpus", default="data/mmaffin", help="a built corpus folder (or a Hub dataset id)")
    parser.add_argument("--split", default="test", help="corpus split")
    parser.add_argument("--out", required=True, help="predictions file (JSON lines; resumed if it exists)")
    add_comma_list(parser, "--datasets", "only these corpus datasets (a,b or a b; default: all)")
    add_comma_list(parser, "--tasks", "only these tasks, <dataset>/<subtask> (default: all)")
    add_comma_list(parser, "--modalities", "only these modalities (default: all)", allowed=("text", "image", "video"))
    parser.add_argument("--limit", type=int, help="at most N records per dataset (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=8, help="hf: records per generate call")
    parser.add_argument("--dtype", default="auto", help="hf: model dtype (auto, bfloat16, float32, ...)")
    parser.add_argument("--decoder", default="auto", help="video decoder: auto, torchcodec, decord, pyav")
    parser.add_argument(
        "--max-prompt-tokens",
        type=int,
        default=DEFAULT_MAX_PROMPT_TOKENS,
        help="hf: longer prompts are counted and logged, never cut",
    )
    decoding = parser.add_argument_group("decoding", "each task's own (eval/tasks/) unless given: then every task's")
    decoding.add_argument("--max-new-tokens", type=int, help="reply length cap (default: the task's)")
    decoding.add_argument("--num-beams", type=int, help="beams (fewer than a task returns: that many returned)")
    decoding.add_argument("--num-return-sequences", type=int, help="ranked replies (at most --num-beams)")
    decoding.add_argument(
        "--server-beam-search",
        choices=SERVER_BEAM_SEARCH,
        default="none",
        help="openai backend: how to ask for a task's beams (none: one greedy reply; vllm: use_beam_search + n)",
    )
    server = parser.add_argument_group(
        "openai backend", "an OpenAI-compatible server (e.g. `vllm serve`), through the openai SDK"
    )
    server.add_argument("--base-url", default="http://localhost:8000/v1", help="the server's /v1 URL")
    server.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (unset: no key is sent; user:password@ in --base-url: "
        "sent as Basic auth)",
    )
    server.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    server.add_argument("--timeout", type=float, default=120.0, help="seconds per attempt (connect, each read)")
    server.add_argument(
        "--max-retries",
        type=int,
        default=6,
        help="retries of a 408 / 429 / 5xx / network failure (the SDK's backoff: 0.5 s doubling to 8 s, or the "
        "server's Retry-After up to 120 s)",
    )
    server.add_argument("--video-mode", choices=VIDEO_MODES, default="frames", help="how videos are sent")
    server.add_argument(
        "--extra-body",
        metavar="JSON",
        help="extra request fields, e.g. '{\"top_k\": 1}' (sent with every request, recorded with the decoding)",
    )
    engine = parser.add_argument_group("vllm backend", "vLLM's offline engine (GPU; `pip install vllm`)")
    engine.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs the model is split over")
    engine.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        help="fraction of GPU memory vLLM may take",
    )
    engine.add_argument("--max-model-len", type=int, help="context length (default: the model's)")
    return parser


def extra_body(text: str | None) -> dict[str, Any] | None:
    """``--extra-body``'s value: a JSON object, or a `CliError` naming the flag."""
    from mmaff.eval.cli_common import CliError

    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise CliError(f"--extra-body {text}: not JSON ({err})") from None
    if not isinstance(value, dict):
        raise CliError(f"--extra-body {text}: a JSON object is needed, e.g. '{{\"top_k\": 1}}'")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def decoding_overrides(args: argparse.Namespace) -> dict[str, int]:
    """The decoding flags given on the command line (they override every task's setting for the run)."""
    names = ("max_new_tokens", "num_beams", "num_return_sequences")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _backend(args: argparse.Namespace, root: Path, budget: MediaBudget) -> Backend:
    try:
        decodings = task_decodings(**decoding_overrides(args))
    except ValueError as err:
        from mmaff.eval.cli_common import CliError

        raise CliError(str(err)) from None
    if args.backend == "hf":
        return HFGenerator(
            args.model,
            root,
            budget,
            batch_size=args.batch_size,
            dtype=args.dtype,
            decoder=args.decoder,
            max_prompt_tokens=args.max_prompt_tokens,
            decodings=decodings,
        )
    if args.backend == "openai":
        try:
            return OpenAIChatGenerator(
                args.base_url,
                args.model,
                os.environ.get(args.api_key_env),
                corpus_root=root,
                budget=budget,
                concurrency=args.concurrency,
                timeout=args.timeout,
                max_retries=args.max_retries,
                video_mode=args.video_mode,
                decoder=args.decoder,
                decodings=decodings,
                beam_search=args.server_beam_search,
                extra_body=extra_body(args.extra_body),
            )
        except ValueError as err:  # a flag out of range or a --base-url without http(s)://host
            from mmaff.eval.cli_common import CliError

            raise CliError(str(err)) from None
    return VLLMGenerator(
        args.model,
        root,
        budget,
        decoder=args.decoder,
        decodings=decodings,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
    )


def run_description(
    args: argparse.Namespace,
    backend: Backend,
    corpus_root: Path,
    argv: Sequence[str] | None = None,
    module: str = "mmaff.generate",
    records: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """What the run file records: backend, model, corpus build, split, decoding (run-wide settings and, for a
    generating backend, ``tasks``: the decoding of each task of `records` as applied), the decoding flags given,
    package versions, command (its secrets redacted: `mmaff.redact`, plus the backend's own API key and
    password)."""
    import sys
    from datetime import datetime
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("mmaff", "torch", "transformers", "vllm", "openai"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "backend": backend.name,
        "model": backend.model_name,
        **corpus_fingerprint(corpus_root),
        "split": args.split,
        "decoding": run_decoding(backend, records),
        "decoding_overrides": decoding_overrides(args),  # reflected in the decoding of each task
        "endpoint": getattr(backend, "url", None),  # a server may move between resumes: not part of the identity
        "packages": packages,
        "command": redact_command(
            ["python", "-m", module, *(sys.argv[1:] if argv is None else argv)], getattr(backend, "secrets", ())
        ),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_decoding(backend: Backend, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The backend's run-wide decoding settings, plus ``tasks``: task name -> its decoding, for the tasks of
    `records` (generating backends only)."""
    tasks = {name: task_settings(backend, name) for name in sorted({record_task(r) for r in records})}
    if not tasks or None in tasks.values():
        return dict(backend.decoding)
    return {**backend.decoding, "tasks": tasks}


def run_data_parallel(
    records: Sequence[dict[str, Any]], backend: Backend, out: str | Path, run: dict[str, Any]
) -> GenerateReport:
    """`generate_data_parallel` after recording the run: every rank refuses to resume into another run's file,
    rank 0 writes the run file."""
    state = distributed_state()
    check_run(out, run)
    state.wait_for_everyone()
    if state.is_main_process:
        write_run(out, run)
    return generate_data_parallel(records, backend, out, state=state)


def main(argv: Sequence[str] | None = None) -> GenerateReport:
    from mmaff.eval.cli_common import open_selection

    args = _parse_args(argv)
    corpus, records = open_selection(args, model_is_path=args.backend != "openai")  # a server's model: a name
    backend = _backend(args, corpus.root, corpus.budget)
    run = run_description(args, backend, corpus.root, argv, records=records)
    if args.backend == "hf":
        report = run_data_parallel(records, backend, args.out, run)
    else:  # servers and vLLM parallelise themselves: one process
        write_run(args.out, run)
        with PredictionWriter(args.out) as writer:
            report = generate(records, backend, writer)
    print(json.dumps(report.as_dict()))
    return report


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli

    run_cli(main, extra=(APIError,))  # an APIError already names the record and the server, secrets redacted
