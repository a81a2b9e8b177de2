"""MASIVE Sim@k (arXiv 2407.12196; the authors' code/metrics.py `context_sim`): how close the predicted affective
states are to the gold ones in meaning, in context.

Per item and per beam: the masked text (``[MASK1]`` ...) is filled once with the gold terms and once with the
beam's terms (`fill_slots`, the authors' `fill_context`: slots in order, a space put before a term that follows
a non-space, slots beyond the terms emptied). Each filled text is tokenized without special tokens; each term is
tokenized alone and looked up in it, left to right, each search starting after the previous term found. A term's
embedding is the encoder's last hidden state at its first sub-token, computed on the window of +-100 tokens
around it (no [CLS] / [SEP], as the authors run `BertModel` on the raw window). The beam's score is the mean over
the gold slots of cosine(gold term, predicted term in the same slot); a slot the beam does not fill, a term not
found in its filled text, or a beam that failed to parse scores 0, as in the authors' code. Sim@k = the max over
the first k beams (their default ``--sim-type max``), averaged over items (`mmaff.eval.metrics.similarity_at_k`).

Two deliberate departures, both where the authors' code misaligns slots: the mean runs over all gold slots (theirs
`zip`s with a gold list that can come out shorter), and a term ending exactly at the end of its text is searched
like any other (their strict `start + len(term) < len(text)` skips it without a placeholder, shifting the later
terms into the wrong slots).

The model: a sentence-transformers folder (or a plain transformers encoder folder, which sentence-transformers
wraps with mean pooling), loaded with `SentenceTransformer`; its first module's `auto_model` and `tokenizer` are
used directly, because `encode(output_value="token_embeddings")` adds special tokens and cuts at
`max_seq_length`, and the authors' windows have neither. They used ``bert-base-multilingual-uncased``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmaff.eval.cli_common import CliError

if TYPE_CHECKING:
    import torch

SLOT = re.compile(r"\[MASK\d+\]")
CONTEXT_TOKENS = 100  # tokens kept on each side of a term (the authors' CONTEXT_SIZE)
AUTHORS_MODEL = "bert-base-multilingual-uncased"


class SimilarityModelError(CliError):
    """A --sim-model that cannot be used (the message names the path and the fix)."""


def fill_slots(text: str, terms: Sequence[str]) -> str:
    """The masked text with its slots replaced by `terms` in order (the authors' `fill_context`)."""
    remaining = list(terms)

    def replace(match: re.Match[str]) -> str:
        if not remaining:
            return ""
        space = " " if match.start() > 0 and text[match.start() - 1] not in (" ", "\n") else ""
        return space + remaining.pop(0)

    return SLOT.sub(replace, text)


def find_terms(text_ids: Sequence[int], term_ids: Sequence[Sequence[int]]) -> list[int | None]:
    """Position of each term's first token in `text_ids`, searched left to right after the previous term found;
    None for a term not found (or empty)."""
    positions: list[int | None] = []
    start = 0
    for ids in term_ids:
        ids = list(ids)
        found = next(
            (i for i in range(start, len(text_ids) - len(ids) + 1) if ids and list(text_ids[i : i + len(ids)]) == ids),
            None,
        )
        positions.append(found)
        if found is not None:
            start = found + len(ids)
    return positions


@dataclass(frozen=True)
class _Slot:
    """Where one term's embedding comes from: a window of token ids and the term's offset in it."""

    window: tuple[int, ...]
    offset: int


class ContextualSimilarity:
    """Sim@k's term embeddings with a sentence-transformers model (see the module docstring)."""

    def __init__(self, model_path: str | Path, *, batch_size: int = 32, device: str | None = None) -> None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise SimilarityModelError(
                f"--sim-model {model_path}: no such folder; give a sentence-transformers model folder (the authors "
                f"used {AUTHORS_MODEL}: save it with SentenceTransformer('{AUTHORS_MODEL}').save(PATH))"
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SimilarityModelError(
                "--sim-model needs sentence-transformers: pip install '.[sim]' (or sentence-transformers==6.3.0)"
            ) from None
        try:
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as error:  # a folder sentence-transformers cannot read: its error, on one line
            raise SimilarityModelError(
                f"--sim-model {model_path}: not a loadable sentence-transformers / transformers model folder "
                f"({type(error).__name__}: {error})"
            ) from None
        first = model[0]
        if not hasattr(first, "auto_model") or not hasattr(first, "tokenizer"):
            raise SimilarityModelError(
                f"--sim-model {model_path}: its first module ({type(first).__name__}) is not a transformer with a "
                "tokenizer; give a model whose first module is sentence_transformers' Transformer"
            )
        self.encoder, self.tokenizer = first.auto_model.eval(), first.tokenizer
        self.device = model.device
        self.batch_size = batch_size
        self.name = str(model_path)

    # -- planning: token ids, term positions, windows ------------------------------------------------------------
    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []

    def _slots(self, text: str, terms: Sequence[str]) -> list[_Slot | None]:
        """The embedding source of each term of `terms` in `text` filled with them."""
        text_ids = self._ids([fill_slots(text, terms)])[0]
        slots: list[_Slot | None] = []
        for position in find_terms(text_ids, self._ids(terms)):
            if position is None:
                slots.append(None)
                continue
            low, high = max(position - CONTEXT_TOKENS, 0), min(position + CONTEXT_TOKENS, len(text_ids))
            slots.append(_Slot(tuple(text_ids[low:high]), position - low))
        return slots

    # -- running the encoder --------------------------------------------------------------------------------------
    def _embed(self, slots: set[_Slot]) -> dict[_Slot, torch.Tensor]:
        """The hidden state of every slot, its windows run in batches (right-padded, longest first)."""
        import torch

        by_window: dict[tuple[int, ...], list[_Slot]] = {}
        for slot in slots:
            by_window.setdefault(slot.window, []).append(slot)
        windows = sorted(by_window, key=lambda w: (-len(w), w))
        pad = self.tokenizer.pad_token_id or 0
        vectors: dict[_Slot, torch.Tensor] = {}
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                width = len(batch[0])
                ids = torch.tensor([list(w) + [pad] * (width - len(w)) for w in batch], device=self.device)
                mask = torch.tensor([[1] * len(w) + [0] * (width - len(w)) for w in batch], device=self.device)
                hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float().cpu()
                for row, window in enumerate(batch):
                    for slot in by_window[window]:
                        vectors[slot] = hidden[row, slot.offset]
        return vectors

    # -- scores ---------------------------------------------------------------------------------------------------
    def beam_similarities(
        self, items: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str] | None]]]
    ) -> list[list[float]]:
        """Per item (masked text, gold terms, beams' terms best first; None = a beam that failed to parse), each
        beam's mean over the gold slots of cosine(gold term, the beam's term in that slot)."""
        plans = []
        for text, gold, beams in items:
            gold_slots = self._slots(text, gold)
            beam_slots = [self._slots(text, list(beam)[: len(gold)]) if beam is not None else [] for beam in beams]
            plans.append((len(gold), gold_slots, beam_slots))
        needed = {s for _, g, bs in plans for slots in (g, *bs) for s in slots if s is not None}
        vectors = self._embed(needed)
        return [[_mean_cosine(n, gold, beam, vectors) for beam in beams] for n, gold, beams in plans]


def _mean_cosine(n: int, gold: list[_Slot | None], beam: list[_Slot | None], vectors: dict[_Slot, Any]) -> float:
    import torch

    total = 0.0
    for j in range(n):
        a = gold[j] if j < len(gold) else None
        b = beam[j] if j < len(beam) else None
        if a is not None and b is not None:
            total += float(torch.nn.functional.cosine_similarity(vectors[a], vectors[b], dim=0))
    return total / n
