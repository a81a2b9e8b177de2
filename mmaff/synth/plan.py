"""The generation plan: per language, which samples to ask for (planned emotions, text type, length band, setting).

The corpus's label cardinality and co-occurrence are chosen here, not left to the generator:

* cardinality: the share of samples with 0 (neutral), 1, 2 and 3 emotions, apportioned exactly per language
  (largest remainders). Default 15 / 45 / 30 / 10 %: a choice between the two public multi-label references,
  GoEmotions (Demszky et al. 2020: mostly one label per text, about 17 % of the examples with two or more) and
  SemEval-2018 Task 1 E-c (Mohammad et al. 2018: most tweets with two or three emotions, few without), so a model
  sees single-emotion texts most and real mixtures often.
* combinations: the first emotion drawn by `emotion_weights`, each further one by its weight times the product of
  its `pair_weights` with the ones already drawn. Default pair weights (a choice, following the co-occurrence
  pattern of SemEval-2018 E-c, where same-valence emotions co-occur and opposite ones rarely do): 1.0 within a
  valence group (`VALENCE`), 0.5 for `surprise` with anything, 0.1 across valences; a recipe overrides any pair
  ("joy+anger: 0.3").
* text type, length band, setting, person and platform: drawn by weight per sample.

Everything is drawn from `random.Random` seeded with a string made of the recipe seed and the language (string
seeds are hashed with SHA-512, not Python's salted `hash()`), so a plan is the same on every run and machine, and
adding a language leaves the other languages' plans unchanged. Sample ids are ``<language>-<number:06d>``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

DEFAULT_CARDINALITY = {0: 0.15, 1: 0.45, 2: 0.30, 3: 0.10}
VALENCE = {
    "joy": "positive",
    "love": "positive",
    "gratitude": "positive",
    "sadness": "negative",
    "anger": "negative",
    "fear": "negative",
    "disgust": "negative",
    "frustration": "negative",
    "contempt": "negative",
}
SAME_VALENCE, WITH_SURPRISE, ACROSS_VALENCE = 1.0, 0.5, 0.1
PLAN_KEYS = ("cardinality", "emotion_weights", "pair_weights", "text_types", "length_bands")


@dataclass(frozen=True)
class PlannedSample:
    id: str
    language: str
    emotions: tuple[str, ...]  # in label-set order; () = neutral
    text_type: str
    length_band: str
    setting: str
    person: str
    platform: str
    seed: int  # per-sample seed sent to the server (reproducible sampling where the server honours it)


@dataclass(frozen=True)
class PlanRules:
    cardinality: dict[int, float]
    emotion_weights: dict[str, float]
    pair_weights: dict[tuple[str, str], float]
    text_types: dict[str, float]
    length_bands: dict[str, float]

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, emotions: Sequence[str], text_types: Sequence[str], bands: Sequence[str]
    ) -> PlanRules:
        """The recipe's `plan:` mapping over the defaults; ValueError (one line, naming the key) when bad."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(PLAN_KEYS))
        if unknown:
            raise ValueError(f"plan: unknown key {unknown[0]!r} (known: {', '.join(PLAN_KEYS)})")
        cardinality = {int(k): v for k, v in _weights(data, "cardinality", DEFAULT_CARDINALITY, None).items()}
        if not set(cardinality) <= set(range(min(3, len(emotions)) + 1)):
            raise ValueError(f"plan: cardinality keys must be 0..{min(3, len(emotions))}, got {sorted(cardinality)}")
        pairs = default_pair_weights(emotions)
        for key, value in _weights(data, "pair_weights", {}, None).items():
            a, sep, b = str(key).partition("+")
            if not sep or a not in emotions or b not in emotions or a == b:
                raise ValueError(f"plan: pair_weights key {key!r} must be '<emotion>+<emotion>' of {list(emotions)}")
            pairs[_pair(a, b)] = value
        return cls(
            cardinality=cardinality,
            emotion_weights=_weights(data, "emotion_weights", dict.fromkeys(emotions, 1.0), emotions),
            pair_weights=pairs,
            text_types=_weights(data, "text_types", dict.fromkeys(text_types, 1.0), text_types),
            length_bands=_weights(data, "length_bands", dict.fromkeys(bands, 1.0), bands),
        )


def _weights(data: Mapping[str, Any], key: str, default: Mapping[Any, float], known: Sequence[str] | None) -> dict:
    """A weight table of the plan: the default where not given; a given table replaces names it lists."""
    given = data.get(key)
    if given is None:
        return dict(default)
    if not isinstance(given, Mapping):
        raise ValueError(f"plan: {key} must be a mapping of name -> weight")
    for name, value in given.items():
        if known is not None and name not in known:
            raise ValueError(f"plan: {key}: unknown name {name!r} (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"plan: {key}.{name} must be a number >= 0, got {value!r}")
    table = {**default, **given} if known is not None else dict(given)
    if key != "pair_weights" and not any(table.values()):
        raise ValueError(f"plan: {key} needs at least one weight > 0")
    return table


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def default_pair_weights(emotions: Sequence[str]) -> dict[tuple[str, str], float]:
    """Same valence 1.0, surprise with anything 0.5, across valences 0.1 (see the module docstring)."""
    weights = {}
    for a, b in combinations(emotions, 2):
        va, vb = VALENCE.get(a), VALENCE.get(b)
        weight = WITH_SURPRISE if None in (va, vb) else SAME_VALENCE if va == vb else ACROSS_VALENCE
        weights[_pair(a, b)] = weight
    return weights


def apportion(total: int, shares: Mapping[Any, float]) -> dict[Any, int]:
    """`total` split by `shares` exactly (largest remainders; ties to the earlier key)."""
    weight = sum(shares.values())
    exact = {k: total * v / weight for k, v in shares.items()}
    counts = {k: int(x) for k, x in exact.items()}
    order = sorted(shares, key=lambda k: (-(exact[k] - counts[k]), list(shares).index(k)))
    for key in order[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def _draw_emotions(rng: random.Random, k: int, rules: PlanRules, order: Sequence[str]) -> tuple[str, ...]:
    chosen: list[str] = []
    for _ in range(k):
        candidates = [e for e in order if e not in chosen]
        weights = []
        for emotion in candidates:
            weight = rules.emotion_weights[emotion]
            for other in chosen:
                weight *= rules.pair_weights[_pair(emotion, other)]
            weights.append(weight)
        if not any(weights):
            raise ValueError(f"plan: no emotion can join {chosen} (all its weights are 0)")
        chosen.append(rng.choices(candidates, weights)[0])
    return tuple(e for e in order if e in chosen)


def _pick(rng: random.Random, table: Mapping[str, float]) -> str:
    return rng.choices(list(table), list(table.values()))[0]


def plan_language(
    language: str, count: int, seed: int, rules: PlanRules, emotions: Sequence[str], profile: Mapping[str, Any]
) -> list[PlannedSample]:
    """The planned samples of one language, in id order."""
    rng = random.Random(f"mmaff-synth:{seed}:{language}")
    sizes = [k for k, n in apportion(count, rules.cardinality).items() for _ in range(n)]
    rng.shuffle(sizes)
    samples = []
    for number, k in enumerate(sizes):
        samples.append(
            PlannedSample(
                id=f"{language}-{number:06d}",
                language=language,
                emotions=_draw_emotions(rng, k, rules, emotions),
                text_type=_pick(rng, rules.text_types),
                length_band=_pick(rng, rules.length_bands),
                setting=rng.choice(profile["settings"]),
                person=rng.choice(profile["people"]),
                platform=rng.choice(profile["platforms"]),
                seed=rng.randrange(2**31),
            )
        )
    return samples


def plan_corpus(
    counts: Mapping[str, int],
    seed: int,
    rules: PlanRules,
    emotions: Sequence[str],
    profiles: Mapping[str, Mapping[str, Any]],
) -> list[PlannedSample]:
    """Every planned sample, languages in the given order."""
    return [s for lang, n in counts.items() for s in plan_language(lang, n, seed, rules, emotions, profiles[lang])]
