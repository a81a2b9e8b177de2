"""The corpus dataset card (README.md with Hub metadata) and the console summary, from the manifest.

One writer for both cards: the build's (`configs` over the split JSONL files) and the Hub's (`mmaff.hub.push_dataset`,
`configs` over parquet shards). The metadata goes through `huggingface_hub.DatasetCardData`, never hand-written YAML;
`huggingface_hub` is imported only when a card is rendered (`--help` stays fast)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mmaff.data.registry import DatasetSpec
from mmaff.data.schema import ARROW_FEATURES, SPLITS

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard

# Language codes of the sources that are not ISO 639: XED names its files br (Brazilian Portuguese, while ISO `br` is
# Breton), cn and tw (Mainland and Traditional Chinese). The Hub's `language` takes ISO 639-1/2/3 codes only.
NON_ISO_LANGUAGES = {"br": "pt", "cn": "zh", "tw": "zh"}
LICENSE_NAME = "mixed-source-licences"
LICENSE_FILE = "LICENSE.md"
MMAFFBEN_BIBTEX = """@article{liu2025mmaffben,
  title = {{MMAFFBen}: A Multilingual and Multimodal Affective Analysis Benchmark for Evaluating {LLMs} and {VLMs}},
  author = {Liu, Zhiwei and Qian, Lingfei and Xie, Qianqian and Huang, Jimin and Yang, Kailai and Ananiadou, Sophia},
  journal = {arXiv preprint arXiv:2505.24423},
  year = {2025}
}"""
_SIZE_BOUNDS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
_SIZE_BOUNDS += [(10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]

_SCHEMA = """\
| field | meaning |
|---|---|
| `id` | stable id `<dataset>/<subset>/<subtask>[/<facet>]/<source id>`, from the source's own ids (content hash where the source has none) |
| `dataset`, `subset`, `subtask` | registry key, subset (language or source part), subtask (e.g. `E-c`, `V-reg+E-c`) |
| `task` | SP, SI, EC, EI, VAD, ASI; joint `A+B`; two-step `A>B` (A's gold given, B asked) |
| `target_type` | single, multi, real, ordinal, vad, open, joint |
| `language`, `modality`, `split` | the source's language code; text/image/video; train/validation/test |
| `messages` | system/user/assistant turns, content parts `{{"type": "text"|"image"|"video"}}` (TRL / Qwen2.5-VL shape) |
| `images`, `videos` | {images_meaning} |
| `visual_tokens`, `media` | Qwen2.5-VL visual tokens under the build's budgets; per item size, frames, fps, sampled frames, tokens |
| `text` | the raw input text, or null |
| `gold` | structured gold: label, list of labels (`[]` = none/neutral), number, `{{dim: number}}`, `[terms]`, `{{task: gold}}` |
| `given` | two-step records: the first task's gold shown in the prompt |
| `label_space` | labels and their prompt ids, or the numeric range |
| `template` | `{{name, version}}` of the template that rendered the prompt and answer |
| `source` | file and line in the raw data, source id and source metadata |
"""
_CORPUS_MEDIA = "media paths relative to the corpus folder (`media/<dataset>/...`)"


def iso_language(code: str) -> str:
    """A source's language code as the ISO 639 code the Hub accepts (`br` -> `pt`, `cn`/`tw` -> `zh`)."""
    base = code.split("-")[0].lower()
    return NON_ISO_LANGUAGES.get(base, base)


def hub_languages(codes: Iterable[str]) -> list[str]:
    return sorted({iso_language(c) for c in codes})


def size_category(records: int) -> str:
    return next((name for bound, name in _SIZE_BOUNDS if records < bound), "n>1T")


def built_datasets(manifest: dict[str, Any]) -> list[str]:
    return [k for k, d in manifest["datasets"].items() if d["status"] == "built"]


def split_rows(info: dict[str, Any]) -> dict[str, int]:
    """A dataset's (or subtask's) records per split from its manifest counts."""
    return {s: sum(sum(t.values()) for t in info.get("counts", {}).get(s, {}).values()) for s in SPLITS}


def summary_table(manifest: dict[str, Any]) -> str:
    lines = [f"{'dataset':<20} {'status':<8} {'train':>8} {'valid':>8} {'test':>8} {'rejects':>8} {'capped':>8}"]
    for key, info in manifest["datasets"].items():
        if info["status"] != "built":
            lines.append(f"{key:<20} {info['status']:<8} {info['message']}")
            continue
        n = split_rows(info)
        rejects = info["reject_lines"]  # input rows with a rejected record: the lines of rejects.jsonl
        lines.append(
            f"{key:<20} {'built':<8} {n['train']:>8} {n['validation']:>8} {n['test']:>8} {rejects:>8} {info['capped']:>8}"
        )
    return "\n".join(lines)


def licence_table(keys: Iterable[str], registry: dict[str, DatasetSpec]) -> list[str]:
    lines = ["| dataset | modality | languages | licence | research only | homepage | source |", "|---" * 7 + "|"]
    for key in keys:
        spec = registry[key]
        lines.append(
            f"| {spec.title} (`{key}`) | {spec.modality} | {', '.join(spec.languages)} | {spec.license} | "
            f"{'yes' if spec.research_only else 'no'} | {spec.homepage or '-'} | {spec.source} |"
        )
    return lines


def gating_guidance(keys: Iterable[str], registry: dict[str, DatasetSpec]) -> list[str]:
    restricted = [k for k in keys if registry[k].research_only]
    if not restricted:
        return ["Every source of this build allows use beyond research; each licence above still applies."]
    return [
        f"These sources are licensed for research use only (or under unclear terms): {', '.join(restricted)}. "
        "Publish a corpus that contains them only as a **gated** (or private) dataset: on the Hub, Settings -> "
        "*Access requests* -> enable (the card's `extra_gated_prompt` is shown to whoever asks), or "
        '`HfApi().update_repo_settings(repo_id, gated="manual", repo_type="dataset")`. Users must accept each '
        "source's terms (table above) and may not redistribute the data; build without these datasets "
        "(`--datasets`) for an ungated release."
    ]


def corpus_bibtex(manifest: dict[str, Any], repo_id: str | None) -> str:
    commit = manifest.get("git", {}).get("commit", "unknown")
    key = f"{manifest['corpus']}-{str(commit)[:7]}".replace("_", "-")
    where = f"https://huggingface.co/datasets/{repo_id}" if repo_id else "built locally with mmaff"
    return (
        f"@misc{{{key},\n  title = {{{{{manifest['corpus']}}}: an affective instruction corpus built with mmaff from "
        f"the official raw files}},\n  howpublished = {{\\url{{{where}}}}},\n"
        f"  note = {{mmaff git commit {commit}; cite every source dataset as well}}\n}}"
    )


def citations(keys: Iterable[str], registry: dict[str, DatasetSpec], manifest: dict[str, Any], repo_id: str | None):
    lines = ["This corpus (and MMAFFBen, whose prompt style and task set it follows):", "", "```bibtex"]
    lines += [corpus_bibtex(manifest, repo_id), MMAFFBEN_BIBTEX, "```", "", "Every source it contains:", ""]
    for key in keys:
        lines += [f"`{key}` ({registry[key].citation}):", "", "```bibtex", registry[key].bibtex, "```", ""]
    return lines


def label_sets(manifest: dict[str, Any], registry: dict[str, DatasetSpec]) -> list[str]:
    lines = ["| dataset | subtask | task | target | labels / range | template |", "|---|---|---|---|---|---|"]
    for key, info in manifest["datasets"].items():
        spec = registry[key]
        for name in info.get("subtasks", spec.subtasks):
            st = spec.subtasks[name]
            if st.label_set is not None:
                labels = ", ".join(f"{i} {n}" for i, n in zip(st.label_set.ids, st.label_set.labels))
                labels += (
                    f" (none: {st.label_set.none['id']} {st.label_set.none['name']})" if st.label_set.none else ""
                )
            elif st.range is not None:
                labels = f"[{st.range[0]}, {st.range[1]}]"
            else:
                labels = "open vocabulary" if st.target_type == "open" else " + ".join(st.parts)
            lines.append(f"| {key} | {name} | {st.task} | {st.target_type} | {labels} | {st.template} |")
    return lines


def card_metadata(
    manifest: dict[str, Any], registry: dict[str, DatasetSpec], configs: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """The card's Hub metadata as `DatasetCardData` keyword arguments."""
    built = built_datasets(manifest)
    languages = hub_languages(
        lang for k in built for s in manifest["datasets"][k]["counts"].values() for t in s.values() for lang in t
    )
    modalities = sorted({registry[k].modality for k in built})
    records = sum(manifest.get("totals", {}).get("records", {}).values())
    metadata = {
        "pretty_name": f"{manifest['corpus']} affective instruction corpus",
        "language": languages,
        "multilinguality": "multilingual" if len(languages) > 1 else "monolingual",
        "task_categories": [f"{m}-classification" for m in modalities] + ["text-generation"],
        "size_categories": [size_category(records)],
        "tags": ["emotion", "sentiment", "affective-computing", "instruction-tuning"],
        "license": "other",
        "license_name": LICENSE_NAME,
        "license_link": LICENSE_FILE,
        "configs": configs,
    }
    restricted = [k for k in built if registry[k].research_only]
    if restricted:
        metadata["extra_gated_prompt"] = (
            f"This corpus contains sources licensed for research use only ({', '.join(restricted)}). By requesting "
            f"access you agree to each source's licence and terms (see {LICENSE_FILE}) and to use the data for "
            "non-commercial research only."
        )
        metadata["extra_gated_fields"] = {
            "Affiliation": "text",
            "I agree to use this data for research only": "checkbox",
        }
    return metadata | extra


def licence_file(manifest: dict[str, Any], registry: dict[str, DatasetSpec]) -> str:
    """LICENSE.md (the card's `license_link`): the mix has no single licence; each source keeps its own."""
    built = built_datasets(manifest)
    lines = [
        f"# Licences of {manifest['corpus']}",
        "",
        "This corpus has no licence of its own: every record keeps the "
        "licence of the source it was built from. Respect each of them.",
    ]
    lines += ["", *licence_table(built, registry), "", "## Gating", "", *gating_guidance(built, registry), ""]
    return "\n".join(lines)


def dataset_card(
    manifest: dict[str, Any],
    registry: dict[str, DatasetSpec],
    *,
    configs: list[dict[str, Any]],
    media_note: str = _CORPUS_MEDIA,
    loading: str = "",
    extra_sections: list[str] = (),
    repo_id: str | None = None,
    **metadata: Any,
) -> DatasetCard:
    """The dataset card: Hub metadata, contents (manifest figures), schema, licences, gating, BibTeX, label sets."""
    from huggingface_hub import DatasetCard, DatasetCardData

    built = built_datasets(manifest)
    data = DatasetCardData(**card_metadata(manifest, registry, configs, **metadata))
    body = [
        f"# {manifest['corpus']}",
        "",
        "Affective instruction corpus built from the official raw files by `make build-mmaffin` "
        f"(git {manifest['git']['commit']}, template style `{manifest['template_style']}`). "
        "Every input row is either a record here or a line in `rejects.jsonl` (one per row; `row_rejected: false` "
        "marks a written row that lost only derived records); `manifest.json` has all counts and "
        "the hashes of every input and output file.",
        "",
        "## Contents",
        "",
        f"Records: {manifest.get('totals', {}).get('records', {})}; rejected input rows: "
        f"{manifest.get('totals', {}).get('rejects', 0)}.",
        "",
        "```",
        summary_table(manifest),
        "```",
        "",
        *extra_sections,
        "## Record schema",
        "",
        _SCHEMA.format(images_meaning=media_note),
        loading,
        "",
        "## Sources and licences",
        "",
        "The corpus has no single licence (`license: other`): each source keeps its own; check it before any use.",
        "",
        *licence_table(built, registry),
        "",
        "## Gating",
        "",
        *gating_guidance(built, registry),
        "",
        "## Citation",
        "",
        *citations(built, registry, manifest, repo_id),
        "## Label sets",
        "",
        *label_sets(manifest, registry),
        "",
        "## Known limitations",
        "",
        "Emotion labels are culturally loaded and annotator-dependent; machine-projected (XED) and synthetic "
        "data carry translation and generation artefacts. Splits marked *seeded* in the registry are ours, "
        "not official. Language codes are mapped to ISO 639 in the metadata (XED's br -> pt, cn/tw -> zh); records "
        "keep the source's code.",
        "",
    ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def render(manifest: dict[str, Any], registry: dict[str, DatasetSpec]) -> str:
    """The build's card: one `default` config over the split JSONL files, the fixed schema as features."""
    configs = [
        {
            "config_name": "default",
            "data_files": [
                {"split": split, "path": f"{split}/*.jsonl"}
                for split in SPLITS
                if any(k.startswith(f"{split}/") for k in manifest["outputs"])
            ],
        }
    ]
    loading = (
        "Load it with `mmaff.encode.corpus.load_corpus(path)` or `datasets.load_dataset(...)`: `gold`, `given`, "
        "`label_space` and `source` vary in shape between tasks and are stored as the `Json` feature. "
        "`mmaff push-dataset` turns this folder into the Hub dataset (parquet, media embedded, one config per "
        "modality, dataset and subtask)."
    )
    card = dataset_card(
        manifest,
        registry,
        configs=configs,
        loading=loading,
        dataset_info={"features": ARROW_FEATURES},
        license_link="README.md#sources-and-licences",  # the build writes no LICENSE.md; the push does
    )
    return str(card)
