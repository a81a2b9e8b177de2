"""`mmaff push-dataset`: the upload folder of the bundled corpus loads with `datasets` from anywhere (every config,
images decoded, videos resolved), its card round-trips with licences, BibTeX and ISO languages, two dry runs give
the same bytes, and the push sends exactly that folder to a (loopback) Hub after checking the token."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmaff.data.card import NON_ISO_LANGUAGES, hub_languages
from mmaff.data.registry import load_registry
from mmaff.encode.corpus import read_records
from mmaff.hub.push_dataset import hub_config_name, main
from mmaff.testing.hub_server import FakeHub

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_write_token_0123456789"
ISO_639_3 = Path("/usr/share/iso-codes/json/iso_639-3.json")


@pytest.fixture(scope="module")
def hub_folder(sample_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("push") / "upload"
    assert main([str(sample_corpus), "org/mmaffin", "--dry-run", str(out)]) == 0
    return out


def _load(folder: Path, config: str, cwd: Path, monkeypatch):
    import datasets

    monkeypatch.chdir(cwd)  # media must not resolve against the corpus or the checkout
    return datasets.load_dataset(str(folder), config, cache_dir=str(cwd / "cache"))


def _split_records(corpus: Path, modality: str) -> dict[str, list[dict]]:
    return {s: read_records(corpus, s, modalities=[modality]) for s in ("train", "validation", "test")}


def test_image_config_decodes_every_image_from_another_directory(hub_folder, sample_corpus, tmp_path, monkeypatch):
    loaded = _load(hub_folder, "image", tmp_path, monkeypatch)
    for split, records in _split_records(sample_corpus, "image").items():
        rows = {row["id"]: row for row in loaded[split]} if records else {}
        assert set(rows) == {r["id"] for r in records}
        for record in records:
            images = rows[record["id"]]["images"]
            assert len(images) == len(record["images"]) >= 1
            for image, rel in zip(images, record["images"]):
                image.load()  # PIL decodes the embedded bytes
                assert image.format in {"PNG", "JPEG"}  # BMP re-encoded; what transformers reads
                if rel.lower().endswith(".bmp"):
                    from PIL import Image, ImageChops

                    with Image.open(sample_corpus / rel) as original:  # lossless: same pixels
                        assert ImageChops.difference(original.convert("RGB"), image.convert("RGB")).getbbox() is None


def test_video_config_resolves_every_video(hub_folder, sample_corpus, tmp_path, monkeypatch):
    import av
    from datasets import List, Video

    loaded = _load(hub_folder, "video", tmp_path, monkeypatch)
    for split, records in _split_records(sample_corpus, "video").items():
        assert len(records) >= 1
        rows = {row["id"]: row for row in loaded[split].cast_column("videos", List(Video(decode=False)))}
        for record in records:
            (video,) = rows[record["id"]]["videos"]
            assert video["path"] == record["videos"][0]
            assert video["bytes"] == (sample_corpus / record["videos"][0]).read_bytes()
            with av.open(io.BytesIO(video["bytes"])) as container:
                assert next(container.decode(video=0)).width > 0


def test_every_config_of_the_card_loads_with_its_rows(hub_folder, sample_corpus, tmp_path, monkeypatch):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(hub_folder / "README.md")
    configs = {c["config_name"]: c for c in card.data.configs}
    assert {"all", "text", "image", "video", "meld", "meld.EC", "semeval2018.V-reg_then_E-c"} <= set(configs)
    assert hub_config_name("meld/EC") == "meld.EC"
    records = {s: read_records(sample_corpus, s) for s in ("train", "validation", "test")}
    for name in configs:
        loaded = _load(hub_folder, name, tmp_path, monkeypatch)
        for split, rows in records.items():
            if name == "all":
                wanted = rows
            elif name in ("text", "image", "video"):
                wanted = [r for r in rows if r["modality"] == name]
            elif "." in name:
                wanted = [r for r in rows if hub_config_name(f"{r['dataset']}/{r['subtask']}") == name]
            else:
                wanted = [r for r in rows if r["dataset"] == name]
            got = loaded[split]["id"] if split in loaded else []
            assert sorted(got) == sorted(r["id"] for r in wanted), (name, split)


def test_card_round_trips_with_licences_citations_and_iso_languages(hub_folder, sample_corpus):
    from huggingface_hub import DatasetCard, DatasetCardData

    card = DatasetCard.load(hub_folder / "README.md")
    data = card.data.to_dict()
    assert DatasetCardData(**data).to_dict() == data
    assert data["license"] == "other" and data["license_name"] and (hub_folder / data["license_link"]).is_file()
    assert data["size_categories"] == ["n<1K"] and "image-classification" in data["task_categories"]
    assert "extra_gated_prompt" in data  # research-only sources are in the bundled build
    manifest = json.loads((sample_corpus / "manifest.json").read_text())
    registry = load_registry()
    for key in manifest["datasets"]:
        spec = registry[key]
        assert spec.bibtex.startswith("@") and spec.bibtex in card.text, key
        assert f"| {spec.title} (`{key}`) | {spec.modality} |" in card.text and spec.license in card.text
        assert f"{key:<20} built" in card.text  # the manifest's figures
    assert "@misc{mmaffin-" in card.text and "huggingface.co/datasets/org/mmaffin" in card.text


def _iso_codes() -> set[str]:
    """ISO 639-1 and 639-3 codes (plus the 639-2 `zxx` "no linguistic content"), from Debian's iso-codes."""
    if not ISO_639_3.is_file():
        pytest.skip(f"{ISO_639_3} (the iso-codes package) is not installed")
    entries = json.loads(ISO_639_3.read_text(encoding="utf-8"))["639-3"]
    return {e["alpha_3"] for e in entries} | {e["alpha_2"] for e in entries if "alpha_2" in e}


def test_every_registry_language_becomes_a_valid_iso_code(hub_folder):
    from huggingface_hub import DatasetCard

    codes = _iso_codes()
    every = {lang for spec in load_registry().values() for lang in spec.languages}
    assert {"br", "cn", "tw"} <= every and set(NON_ISO_LANGUAGES) == {"br", "cn", "tw"}
    assert set(hub_languages(every)) <= codes
    assert hub_languages(["br", "cn", "tw"]) == ["pt", "zh"]  # not Breton
    assert set(DatasetCard.load(hub_folder / "README.md").data.language) <= codes


def test_two_dry_runs_give_identical_folders(hub_folder, sample_corpus, tmp_path):
    again = tmp_path / "again"
    assert main([str(sample_corpus), "org/mmaffin", "--dry-run", str(again)]) == 0

    def digest(folder: Path) -> dict[str, str]:
        return {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*")
            if p.is_file()
        }

    assert digest(again) == digest(hub_folder)
    assert main([str(sample_corpus), "org/mmaffin", "--dry-run", str(again)]) == 2  # not into a full folder


def _push(corpus: Path, hub: FakeHub, token: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env |= {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
    }
    argv = [sys.executable, "-m", "mmaff.hub.push_dataset", str(corpus), "org/mmaffin", "--token", token, "--private"]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_push_sends_the_dry_run_folder_in_one_commit(hub_folder, sample_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    with FakeHub(tokens={TOKEN}) as hub:
        result = _push(corpus, hub, TOKEN, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.repos == {"dataset/org/mmaffin": {"private": True, "type": "dataset"}}
    (commit,) = hub.commits
    expected = {p.relative_to(hub_folder).as_posix(): p.read_bytes() for p in hub_folder.rglob("*") if p.is_file()}
    assert commit["files"] == expected and commit["repo"] == "dataset/org/mmaffin"
    assert all(TOKEN.encode() not in data for data in commit["files"].values())
    record = json.loads((corpus / "hub_push.json").read_text())
    card_configs = [
        c["config_name"]
        for c in __import__("yaml").safe_load(expected["README.md"].decode().split("---\n")[1])["configs"]
    ]
    assert record["repo_id"] == "org/mmaffin" and record["revision"] == commit["oid"]
    assert record["configs"] == card_configs and record["task_configs"]["meld/EC"] == "meld.EC"


def test_a_wrong_token_is_one_line_before_any_work(sample_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    with FakeHub(tokens={TOKEN}) as hub:
        result = _push(corpus, hub, "hf_wrong_token_000000000", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith(
        "error: the hub token is not valid (401)"
    )
    assert "hf_wrong" not in result.stderr and "Traceback" not in result.stderr
    assert hub.repos == {} and hub.commits == [] and not (corpus / "hub_push.json").exists()
    assert [path for _, path in hub.requests if "whoami" not in path and "harness" not in path] == []
