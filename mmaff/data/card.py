"""The corpus dataset card (README.md with a Hub YAML header) and the console summary, from the manifest."""

from __future__ import annotations

from typing import Any

import yaml

from mmaff.data.registry import DatasetSpec
from mmaff.data.schema import ARROW_FEATURES, SPLITS

_SCHEMA = """\
| field | meaning |
|---|---|
| `id` | stable id `<dataset>/<subset>/<subtask>[/<facet>]/<source id>`, from the source's own ids (content hash where the source has none) |
| `dataset`, `subset`, `subtask` | registry key, subset (language or source part), subtask (e.g. `E-c`, `V-reg+E-c`) |
| `task` | SP, SI, EC, EI, VAD, ASI; joint `A+B`; two-step `A>B` (A's gold given, B asked) |
| `target_type` | single, multi, real, ordinal, vad, open, joint |
| `language`, `modality`, `split` | ISO code; text/image/video; train/validation/test |
| `messages` | system/user/assistant turns, content parts `{"type": "text"|"image"|"video"}` (TRL / Qwen2.5-VL shape) |
| `images`, `videos` | media paths relative to the corpus folder (`media/<dataset>/...`) |
| `visual_tokens`, `media` | Qwen2.5-VL visual tokens under the build's budgets; per item size, frames, fps, sampled frames, tokens |
| `text` | the raw input text, or null |
| `gold` | structured gold: label, list of labels (`[]` = none/neutral), number, `{dim: number}`, `[terms]`, `{task: gold}` |
| `given` | two-step records: the first task's gold shown in the prompt |
| `label_space` | labels and their prompt ids, or the numeric range |
| `template` | `{name, version}` of the template that rendered the prompt and answer |
| `source` | file and line in the raw data, source id and source metadata |
"""


def _header(manifest: dict[str, Any], registry: dict[str, DatasetSpec]) -> str:
    built = [k for k, d in manifest["datasets"].items() if d["status"] == "built"]
    languages = sorted(
        {lang for k in built for s in manifest["datasets"][k]["counts"].values() for t in s.values() for lang in t}
    )
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
    modalities = sorted({registry[k].modality for k in built})
    header = {
        "pretty_name": f"{manifest['corpus']} affective instruction corpus",
        "language": languages,
        "task_categories": [f"{m}-classification" for m in modalities],
        "tags": ["emotion", "sentiment", "affective-computing", "instruction-tuning"],
        "license": "other",
        "configs": configs,
        "dataset_info": {"features": ARROW_FEATURES},
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n"


def summary_table(manifest: dict[str, Any]) -> str:
    lines = [f"{'dataset':<20} {'status':<8} {'train':>8} {'valid':>8} {'test':>8} {'rejects':>8} {'capped':>8}"]
    for key, info in manifest["datasets"].items():
        if info["status"] != "built":
            lines.append(f"{key:<20} {info['status']:<8} {info['message']}")
            continue
        n = {s: sum(sum(t.values()) for t in info["counts"].get(s, {}).values()) for s in SPLITS}
        rejects = info["reject_lines"]  # input rows with a rejected record: the lines of rejects.jsonl
        lines.append(
            f"{key:<20} {'built':<8} {n['train']:>8} {n['validation']:>8} {n['test']:>8} {rejects:>8} {info['capped']:>8}"
        )
    return "\n".join(lines)


def render(manifest: dict[str, Any], registry: dict[str, DatasetSpec]) -> str:
    parts = [
        _header(manifest, registry),
        f"# {manifest['corpus']}\n",
        "Affective instruction corpus built from the official raw files by `make build-mmaffin` "
        f"(git {manifest['git']['commit']}, template style `{manifest['template_style']}`). "
        "Every input row is either a record here or a line in `rejects.jsonl` (one per row; `row_rejected: false` "
        "marks a written row that lost only derived records); `manifest.json` has all counts and "
        "the hashes of every input and output file.\n",
        "## Contents\n",
        "```",
        summary_table(manifest),
        "```\n",
        "## Record schema\n",
        _SCHEMA,
        "Load it with `mmaff.encode.corpus.load_corpus(path)` or `datasets.load_dataset(...)`: `gold`, `given`, "
        "`label_space` and `source` vary in shape between tasks and are stored as the `Json` feature.\n",
        "## Sources and licences\n",
        "Each source keeps its own licence; check it before any use.\n",
        "| dataset | modality | languages | licence | source | citation |",
        "|---|---|---|---|---|---|",
    ]
    for key in manifest["datasets"]:
        spec = registry[key]
        parts.append(
            f"| {spec.title} | {spec.modality} | {', '.join(spec.languages)} | {spec.license} | {spec.source} | {spec.citation} |"
        )
    parts += [
        "",
        "## Label sets\n",
        "| dataset | subtask | task | target | labels / range | template |",
        "|---|---|---|---|---|---|",
    ]
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
            parts.append(f"| {key} | {name} | {st.task} | {st.target_type} | {labels} | {st.template} |")
    parts += [
        "",
        "## Known limitations\n",
        "Emotion labels are culturally loaded and annotator-dependent; machine-projected (XED) and synthetic "
        "data carry translation and generation artefacts. Splits marked *seeded* in the registry are ours, "
        "not official.\n",
    ]
    return "\n".join(parts)
