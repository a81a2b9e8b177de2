"""The mixture YAML is validated whole before any work: each mistake is one line naming the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmaff.data.build import DEFAULT_MIXTURE, ROOT, BuildError, load_mixture, main
from mmaff.data.registry import load_registry

REGISTRY = load_registry()

BAD_MIXTURES = {
    "misspelt top-level key": (
        "media_budjet: {image_max_pixels: 50000}\ndatasets: {goemotions: {}}\n",
        r"media_budjet: unknown key \(allowed: datasets, media_budget, name, template_style\)",
    ),
    "weight not a number": (
        "datasets: {goemotions: {weight: abc}}\n",
        r"datasets\.goemotions\.weight: expected a number, got str 'abc'",
    ),
    "negative weight": ("datasets: {goemotions: {weight: -1}}\n", r"datasets\.goemotions\.weight: must be >= 0"),
    "cap with a unit": (
        "datasets: {mms: {train_cap_per_language: 20k}}\n",
        r"datasets\.mms\.train_cap_per_language: expected a whole number, got str '20k'",
    ),
    "negative cap": (
        "datasets: {goemotions: {train_caps: {EC: -5}}}\n",
        r"datasets\.goemotions\.train_caps\.EC: must be >= 0",
    ),
    "cap of an unknown subtask": (
        "datasets: {goemotions: {train_caps: {SP: 5}}}\n",
        r"datasets\.goemotions\.train_caps\.SP: unknown key \(allowed: EC\)",
    ),
    "template style typo": (
        "template_style: mmaffbne\ndatasets: {goemotions: {}}\n",
        r"template_style: no templates/mmaffbne/ folder \(allowed: mmaffben\)",
    ),
    "options as a list": (
        "datasets: {fer2013: {options: [ferplus]}}\n",
        r"datasets\.fer2013\.options: expected a mapping, got list",
    ),
    "subtasks not a list": (
        "datasets: {goemotions: {subtasks: EC}}\n",
        r"datasets\.goemotions\.subtasks: expected a non-empty list, got str 'EC' \(allowed: EC\)",
    ),
    "splits typo": (
        "datasets: {goemotions: {splits: [train, valid]}}\n",
        r"datasets\.goemotions\.splits\[1\]: unknown value str 'valid' \(allowed: train, validation, test\)",
    ),
    "unknown option": (
        "datasets: {goemotions: {options: {ferplus: true}}}\n",
        r"datasets\.goemotions\.options\.ferplus: unknown key \(allowed: none\)",
    ),
    "misspelt option": (
        "datasets: {fer2013: {options: {fer_plus: true}}}\n",
        r"datasets\.fer2013\.options\.fer_plus: unknown key \(allowed: ferplus\)",
    ),
    "option of the wrong type": (
        "datasets: {fer2013: {options: {ferplus: 'yes'}}}\n",
        r"datasets\.fer2013\.options\.ferplus: expected bool, got str 'yes'",
    ),
    "pipeline option on a text dataset": (
        "datasets: {goemotions: {options: {extract_frames: true}}}\n",
        r"datasets\.goemotions\.options\.extract_frames: unknown key",
    ),
    "unknown decoder": (
        "datasets: {meld: {options: {extract_frames: true, decoder: ffmpeg}}}\n",
        r"datasets\.meld\.options\.decoder: unknown value str 'ffmpeg' \(allowed: auto, torchcodec, decord, pyav\)",
    ),
    "option outside its choices": (
        "datasets: {emotic: {options: {person: crop_box}}}\n",
        r"datasets\.emotic\.options\.person: unknown value str 'crop_box' \(allowed: box, crop\)",
    ),
    "budget of the wrong type": (
        "media_budget: {image_max_pixels: big}\ndatasets: {goemotions: {}}\n",
        r"media_budget\.image_max_pixels: expected a whole number, got str 'big'",
    ),
    "budget minimum above maximum": (
        "media_budget: {video_min_frames: 16, video_max_frames: 8}\ndatasets: {meld: {}}\n",
        r"media_budget\.video_min_frames: 16 is above video_max_frames 8",
    ),
    "datasets as a list": ("datasets: [goemotions]\n", r"datasets: expected a mapping, got list"),
}


@pytest.mark.parametrize("case", sorted(BAD_MIXTURES))
def test_bad_mixture_names_file_and_key(tmp_path, case):
    text, expected = BAD_MIXTURES[case]
    path = tmp_path / "mixture.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BuildError) as caught:
        load_mixture(path, REGISTRY)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert re.search(expected, message), message


def test_bad_mixture_fails_before_any_work(tmp_path, capsys):
    path = tmp_path / "mixture.yaml"
    path.write_text("datasets:\n  goemotions: {weight: abc}\n", encoding="utf-8")
    out = tmp_path / "corpus"
    assert main(["--mixture", str(path), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {path}: datasets.goemotions.weight: expected a number, got str 'abc'"
    assert "Traceback" not in "\n".join(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixture.yaml"]  # no stage, no lock, no corpus


def _options_read_by_builders() -> dict[str, set[str]]:
    """{builder module: option names it reads through ctx.options}."""
    pattern = re.compile(r"ctx\.options(?:\.get\(|\[)\s*[\"'](\w+)[\"']")
    return {
        path.stem: set(pattern.findall(path.read_text(encoding="utf-8")))
        for path in sorted((ROOT / "data_builders").glob("*.py"))
    }


def test_every_option_a_builder_reads_is_declared_and_accepted(tmp_path):
    from mmaff.data.mixture import allowed_options

    read = _options_read_by_builders()
    assert read["fer2013"] == {"ferplus"} and read["mms"] >= {"hub_id", "min_cleanlab_confidence"}
    for key, spec in REGISTRY.items():
        assert read.get(spec.builder, set()) <= set(allowed_options(spec)), key
    path = tmp_path / "mixture.yaml"
    path.write_text(
        "datasets:\n"
        "  fer2013: {options: {ferplus: true}}\n"
        "  mms: {options: {min_cleanlab_confidence: 0.5}, train_cap_per_language: 100}\n"
        "  emotic: {options: {person: crop}}\n"
        "  meld: {options: {extract_frames: true, decoder: pyav}, weight: 2}\n",
        encoding="utf-8",
    )
    _, entries = load_mixture(path, REGISTRY)
    assert [e.options for e in entries][-1] == {"extract_frames": True, "decoder": "pyav"}
    assert load_mixture(Path(DEFAULT_MIXTURE), REGISTRY)[0].name == "mmaffin"
