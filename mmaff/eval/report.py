"""Reports from a scored run: metrics.json, a markdown results table, PNG plots, model-card eval results.

`python -m mmaff.eval.score` writes all of them into its `--out` folder:

* ``metrics.json`` - every figure with its mode, the run (model, corpus build, decoding), coverage, parse
  failures and truncations (mmaff.eval.score);
* ``results.md`` - per task (primary metric, parse failures, chance level and chance-normalised headline,
  paper_compat headline), per language for multilingual tasks, per emotion for EI, and the chance-normalised
  overall per task group;
* ``plots/`` - confusion matrices, predicted-vs-gold scatters, per-language / per-emotion bars (mmaff.eval.plots);
* ``eval_results.yaml`` - the Hub's ``model-index`` entries (``huggingface_hub.EvalResult``), one per task and
  primary metric, ready for a model card: ``python -m mmaff.eval.report --metrics M.json --model-card README.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmaff.eval.compare import fmt_metric
from mmaff.eval.compare import task_primary_cell as primary_cell

if TYPE_CHECKING:
    from huggingface_hub import EvalResult

    from mmaff.eval.items import Item
    from mmaff.eval.tasks import EvalTask
    from mmaff.hub.model_card import HubDataset

HUB_TASK_TYPES = {"text": "text-classification", "image": "image-classification", "video": "video-classification"}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


# ------------------------------------------------------------------------------------------------ markdown


def _parsed_count(status: dict[str, Any]) -> int:
    """Replies counted in one task|language cell of the parse statuses (strict + lenient + failed)."""
    return sum(status.get(key, 0) for key in ("strict", "lenient", "failed"))


def _failure_rates(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """task -> (failed, total) from the per task|language parse statuses."""
    rates: dict[str, tuple[int, int]] = {}
    for cell, counts in report["parse_status"].items():
        task = cell.split("|", 1)[0]
        failed, total = rates.get(task, (0, 0))
        rates[task] = (failed + counts.get("failed", 0), total + _parsed_count(counts))
    return rates


def _run_lines(report: dict[str, Any]) -> list[str]:
    run, corpus = report.get("run"), report["corpus"]
    models = ", ".join(f"`{m}`" for m in report["rows"]["models"]) or "not recorded"
    lines = [f"- Model: {models}; predictions `{report['predictions']}`"]
    if run:
        decoding = ", ".join(f"{k}={v}" for k, v in run["decoding"].items() if k not in ("max_new_tokens", "tasks"))
        lines.append(f"- Backend `{run['backend']}`, split `{run['split']}`, decoding: {decoding}")
        match = "yes" if report["run_matches_corpus"] else "NO: the predictions were made on another corpus build"
        lines.append(
            f"- Corpus `{corpus['corpus']}` (manifest sha256 `{corpus['corpus_sha256'][:12]}`); same as the run: {match}"
        )
    else:
        lines.append(f"- Corpus `{corpus['corpus']}` (manifest sha256 `{corpus['corpus_sha256'][:12]}`); no run file")
    coverage = report["coverage"]
    predicted = sum(p for p, _ in coverage["predicted_of_expected"].values())
    expected = sum(n for _, n in coverage["predicted_of_expected"].values())
    lines.append(
        f"- Coverage: {predicted}/{expected} items ({'complete' if coverage['complete'] else 'PARTIAL'}); "
        f"replies cut at max_new_tokens: {sum(report['truncated'].values())}"
    )
    return lines


def _paper_headline(entry: dict[str, Any]) -> str:
    paper = entry.get("paper_compat")
    if not paper:
        return ""
    names = paper["notebook_names"]
    return ", ".join(f"{names.get(m, m)} {_fmt(paper['metrics'].get(m))}" for m in paper["saved"])


def _chance_cells(entry: dict[str, Any]) -> tuple[str, str, str]:
    chance = entry.get("against_chance")
    if not chance:
        return "–", "–", "–"
    if "parts" in chance:
        parts = chance["parts"].values()
        return (
            " / ".join(f"{p['metric']} {_fmt(p['value'])}" for p in parts),
            " / ".join(_fmt(p["chance"]) for p in parts),
            _fmt(chance["chance_normalised"]),
        )
    return f"{chance['metric']} {_fmt(chance['value'])}", _fmt(chance["chance"]), _fmt(chance["chance_normalised"])


def results_markdown(report: dict[str, Any]) -> str:
    """The results tables of one scored run (corrected mode unless a column says paper_compat)."""
    lines = ["# Evaluation results", "", *_run_lines(report), ""]
    lines += [
        "## Overall (corrected mode)",
        "",
        "Mean over tasks of the chance-normalised headline, (score - chance) / (1 - chance): 0 = chance, 1 = perfect.",
        "Headlines: accuracy (single-label), sample-Jaccard (multi-label, chance = random label sets), Pearson",
        "(intensities, VAD mean; chance 0), normalised Acc@1 (MASIVE); joint tasks average their parts.",
        "Macro-F1 is over the task's full label list with zero_division=0: a label absent from both gold and",
        "predictions counts 0 (small test sets therefore score below 1 even when every answer is right).",
        "",
        "| group | tasks | mean chance-normalised | undefined |",
        "|---|---:|---:|---|",
    ]
    for group, row in report["overall"].items():
        lines.append(
            f"| {group} | {row['tasks']} | {_fmt(row['mean_chance_normalised'])} | {', '.join(row['undefined']) or ''} |"
        )
    failures = _failure_rates(report)
    lines += [
        "",
        "## Per task",
        "",
        "| task | modality | n | parse failed | primary (corrected) | headline | chance | chance-normalised "
        "| paper_compat (notebook names) |",
        "|---|---|---:|---:|---|---|---:|---:|---|",
    ]
    for name, entry in report["tasks"].items():
        failed, total = failures.get(name, (0, 0))
        headline, chance, normalised = _chance_cells(entry)
        primary = "per part" if entry["target_type"] == "joint" else f"{entry['primary']} {primary_cell(entry)}"
        lines.append(
            f"| {name} | {entry['modality']} | {entry['corrected']['n'] if 'corrected' in entry else '–'} "
            f"| {_percent(failed / total if total else None)} | {primary} | {headline} | {chance} | {normalised} "
            f"| {_paper_headline(entry)} |"
        )
    lines += _language_lines(report)
    lines += _subset_lines(report)
    lines += _emotion_lines(report)
    lines += _official_ei_lines(report)
    lines += _ranking_lines(report)
    lines += _open_vocabulary_lines(report)
    return "\n".join(lines) + "\n"


def _headlines(entry: dict[str, Any], result: dict[str, Any]) -> list[tuple[str, float | None]]:
    """(metric, value) of the task's primary metric in `result`; joint tasks: each part's chance headline."""
    from mmaff.eval.metrics import metric_value

    chance = entry.get("against_chance") or {}
    if "parts" in chance:
        return [
            (f"{part}: {p['metric']}", metric_value(result[part], p["metric"])) for part, p in chance["parts"].items()
        ]
    return [(entry["primary"], metric_value(result, entry["primary"]))]


def _table(title: str, header: str, align: str, rows: list[str]) -> list[str]:
    """A markdown section with one table, or nothing when there are no rows."""
    return ["", f"## {title}", "", header, align, *rows] if rows else []


def _language_lines(report: dict[str, Any]) -> list[str]:
    rows = []
    for name, entry in report["tasks"].items():
        per_language = entry.get("corrected", {}).get("per_language")
        if not per_language:
            continue
        for language, result in per_language.items():
            status = report["parse_status"].get(f"{name}|{language}", {})
            failed = _percent(status.get("failure_rate"))
            for metric, value in _headlines(entry, result):
                cell = fmt_metric(result, metric, value)
                rows.append(f"| {name} | {language} | {_parsed_count(status)} | {failed} | {metric} | {cell} |")
        if entry["target_type"] != "joint":
            macro = entry["corrected"].get("language_macro", {}).get(entry["primary"])
            rows.append(f"| {name} | macro over languages | | | {entry['primary']} | {_fmt(macro)} |")
    header = "| task | language | n | parse failed | metric | value |"
    return _table("Per language", header, "|---|---|---:|---:|---|---:|", rows)


def _emotion_lines(report: dict[str, Any]) -> list[str]:
    rows = []
    for name, entry in report["tasks"].items():
        per_emotion = entry.get("corrected", {}).get("per_emotion")
        if not per_emotion:
            continue
        for emotion, r in per_emotion.items():
            rows.append(
                f"| {name} | {emotion} | {r['n']} | {fmt_metric(r, 'pearson')} | {fmt_metric(r, 'spearman')} |"
            )
        rows.append(f"| {name} | mean of emotions | | {_fmt(entry['corrected'].get('emotion_mean_pearson'))} | |")
    header = "| task | emotion | n | pearson | spearman |"
    return _table("Per emotion (EI)", header, "|---|---|---:|---:|---:|", rows)


def _subset_lines(report: dict[str, Any]) -> list[str]:
    """Per-subset blocks (EWECT usual / virus, scored separately as MMAFFBen does) and their macro."""
    rows = []
    for name, entry in report["tasks"].items():
        per_subset = entry.get("corrected", {}).get("per_subset")
        if not per_subset or entry["target_type"] == "joint":
            continue
        primary = entry["primary"]
        paper = entry.get("paper_compat") or {}
        for subset, result in per_subset.items():
            block = paper.get("per_subset", {}).get(subset) or {}
            paper_cell = (
                ", ".join(
                    f"{paper['notebook_names'].get(m, m)} {_fmt(block.get('metrics', {}).get(m))}"
                    for m in paper["saved"]
                )
                if block
                else ""
            )
            rows.append(
                f"| {name} | {subset} | {result.get('n', '')} | {primary} | {fmt_metric(result, primary)} "
                f"| {paper_cell} |"
            )
        macro = entry["corrected"].get("subset_macro", {}).get(primary)
        rows.append(f"| {name} | macro over subsets | | {primary} | {_fmt(macro)} | |")
    header = "| task | subset | n | metric | value | paper_compat (notebook names) |"
    return _table("Per subset (scored as separate blocks)", header, "|---|---|---:|---|---:|---|", rows)


def _official_ei_lines(report: dict[str, Any]) -> list[str]:
    """SemEval EI official headline: per language, each emotion's Pearson (the cells the official scorer reports
    per language file) and their mean; the headline is the mean over languages of those means."""
    rows = []
    for name, entry in report["tasks"].items():
        corrected = entry.get("corrected", {})
        official = corrected.get("official")
        if not official:
            continue
        cells = corrected.get("per_language_emotion", {})
        for language, mean in official["per_language"].items():
            emotions = ", ".join(
                f"{cell.split('|', 1)[1]} {fmt_metric(result, 'pearson')}"
                for cell, result in cells.items()
                if cell.split("|", 1)[0] == language
            )
            rows.append(f"| {name} | {language} | {emotions} | {_fmt(mean)} |")
        rows.append(f"| {name} | headline (mean over languages) | | **{_fmt(official['headline'])}** |")
    header = "| task | language | Pearson per emotion | mean of the emotions |"
    title = "SemEval EI official headline (mean of per-emotion Pearsons, per language file)"
    return _table(title, header, "|---|---|---|---:|", rows)


def _ranking_lines(report: dict[str, Any]) -> list[str]:
    rows = [
        f"| {name} | {r['covered']} | {_fmt(r['ap_micro'])} | {_fmt(r['auc_micro'])} | {_fmt(r['lrap'])} |"
        for name, entry in report["tasks"].items()
        if (r := entry.get("corrected", {}).get("ranking"))
    ]
    header = "| task | items | AP-micro | AUC-micro | LRAP |"
    return _table("Multi-label ranking (label likelihoods)", header, "|---|---:|---:|---:|---:|", rows)


OPEN_COLUMNS = ("acc@1", "acc@3", "acc@5", "nll", "log_perplexity", "sim@1", "sim@3", "sim@5")


def _open_vocabulary_lines(report: dict[str, Any]) -> list[str]:
    """MASIVE's own table (arXiv 2407.12196, Table 4): exact-match Acc@k, the gold answer's NLL and log-perplexity
    (means over finite values, non-finite ones counted) and Sim@k, pooled and per language; what was not computed
    is said, never shown as 0."""
    from mmaff.eval.metrics import lower_is_better

    rows, notes = [], []
    for name, entry in report["tasks"].items():
        corrected = entry.get("corrected")
        if entry["target_type"] != "open" or not corrected:
            continue
        blocks = {"pooled": corrected["pooled"], **corrected.get("per_language", {})}
        for block, result in blocks.items():
            nonfinite = result.get("nll_nonfinite")
            cells = " | ".join(_fmt(result.get(column)) for column in OPEN_COLUMNS)
            rows.append(f"| {name} | {block} | {result['n']} | {cells} | {_fmt(nonfinite)} |")
        notes += [f"- {name}: {note}" for note in corrected.get("not_computed", {}).values()]
    names = [f"{c} (lower is better)" if lower_is_better("open", c) else c for c in OPEN_COLUMNS]
    header = f"| task | language | n | {' | '.join(names)} | NLL non-finite |"
    align = "|---|---|---:|" + "---:|" * (len(OPEN_COLUMNS) + 1)
    title = "Open vocabulary, MASIVE protocol (exact-match Acc@k; NLL / log-perplexity summed over the answer)"
    table = _table(title, header, align, rows)
    return table + ([""] + notes if table and notes else [])


# ----------------------------------------------------------------------------------------- model card


def _hub_dataset(report: dict[str, Any], dataset_id: str | None) -> HubDataset | None:
    from mmaff.hub.model_card import hub_dataset

    return hub_dataset(report["corpus"].get("corpus_path"), dataset_id)


def _result_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any], str, str, float]]:
    """(task, entry, metric, metric label, value) per task: the primary metric, or each part of a joint task."""
    rows = []
    for name, entry in report["tasks"].items():
        if entry["target_type"] == "joint":
            for part, headline in ((entry.get("against_chance") or {}).get("parts") or {}).items():
                if headline.get("value") is not None:
                    metric = headline["metric"]
                    rows.append((name, entry, metric, f"{part} {metric}", headline["value"]))
        elif entry.get("primary_value") is not None:
            rows.append((name, entry, entry["primary"], entry["primary"], entry["primary_value"]))
    return rows


def eval_results(report: dict[str, Any], *, dataset_id: str | None = None) -> list[EvalResult]:
    """Hub `EvalResult`s of a scored run (corrected mode, pooled): each task's primary metric, each part's headline
    for a joint task; a chained run (`mmaff.eval.chained --score-out`) is named so. The dataset is the corpus's Hub
    id (`dataset_id`, else `<corpus>/hub_push.json`, else the corpus name), its `config` the dataset card's config of
    the task (`mmaff.hub.push_dataset.hub_config_name`; tasks whose config the push did not record are left out), and
    `revision` the pushed commit, only when it is known."""
    from huggingface_hub import EvalResult

    from mmaff.hub.push_dataset import hub_config_name

    dataset = _hub_dataset(report, dataset_id)
    split = (report.get("run") or {}).get("split", "test")
    mode = "chained: the model's own first step" if report.get("chained") else None
    results = []
    for name, entry, metric, label, value in _result_rows(report):
        config = hub_config_name(name)
        if dataset and dataset.configs is not None and config not in dataset.configs:
            continue
        results.append(
            EvalResult(
                task_type=HUB_TASK_TYPES[entry["modality"]],
                task_name=f"{name} ({entry['target_type']}{'; ' + mode if mode else ''})",
                dataset_type=dataset.repo_id if dataset else report["corpus"]["corpus"],
                dataset_name=f"{report['corpus']['corpus']} {name}",
                dataset_config=config,
                dataset_split=split,
                dataset_revision=dataset.revision if dataset else None,
                metric_type=metric,
                metric_name=f"{label} (corrected mode{', chained' if mode else ''})",
                metric_value=round(float(value), 4),
            )
        )
    return results


def _model_name(report: dict[str, Any]) -> str:
    models = list(report["rows"]["models"]) or [((report.get("run") or {}).get("model") or "model")]
    return Path(models[0]).name if Path(models[0]).exists() else models[0]


def model_index_yaml(report: dict[str, Any], *, dataset_id: str | None = None, model_name: str | None = None) -> str:
    """The ``model-index`` YAML block of a model card, for the run's results."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        model_name=model_name or _model_name(report), eval_results=eval_results(report, dataset_id=dataset_id)
    )
    return data.to_yaml() + "\n"


def add_to_model_card(
    card_path: str | Path,
    reports: dict[str, Any] | list[dict[str, Any]],
    *,
    dataset_id: str | None = None,
    model_name: str | None = None,
) -> None:
    """Put the eval results of one or more scored runs (e.g. the ordinary and the chained run) into a model card's
    metadata, replacing earlier ones and keeping its text. The dataset id defaults to the card's own `datasets`."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    reports = [reports] if isinstance(reports, dict) else reports
    named = card.data.datasets or []
    dataset_id = dataset_id or next((r for r in ([named] if isinstance(named, str) else named)), None)
    card.data.eval_results = [result for report in reports for result in eval_results(report, dataset_id=dataset_id)]
    card.data.model_name = model_name or card.data.model_name or _model_name(reports[0])
    if not card.data.datasets and (dataset := _hub_dataset(reports[0], dataset_id)):
        from mmaff.hub.model_card import name_dataset

        name_dataset(card, dataset)
    card.save(card_path)


# --------------------------------------------------------------------------------------------- writing


def write_reports(
    out: Path,
    report: dict[str, Any],
    scored: dict[str, tuple[list[Item], list[Any]]],
    tasks: dict[str, EvalTask],
    *,
    plots: bool = True,
) -> list[Path]:
    """metrics.json, results.md, eval_results.yaml and (unless `plots` is False) plots/ into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        from mmaff.eval.plots import write_all_plots

        rows = {name: (*scored[name], report["tasks"][name].get("corrected", {})) for name in scored}
        for name, paths in write_all_plots(out / "plots", tasks, rows, relative_to=out).items():
            report["tasks"][name]["plots"] = paths
    written = [out / "metrics.json", out / "results.md", out / "eval_results.yaml"]
    _write_atomic(written[0], json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    _write_atomic(written[1], results_markdown(report))
    _write_atomic(written[2], model_index_yaml(report))
    return written + ([out / "plots"] if plots else [])


def _compare(args: Any) -> None:
    from mmaff.eval.compare import CompareError, write_comparison

    if not args.out:
        raise SystemExit("error: --compare needs --out")
    names = args.names.split(",") if args.names else None
    try:
        written = write_comparison(args.compare, args.out, names=names, allow_mixed=args.allow_mixed)
    except CompareError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {', '.join(str(p) for p in written)}")


def main(argv: list[str] | None = None) -> None:
    import argparse

    from mmaff.eval.cli_common import HelpFormatter, check_file

    parser = argparse.ArgumentParser(
        description="Rewrite the reports of a metrics.json; put its results in a model card.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        help="metrics.json written by mmaff.eval.score; several (e.g. the run's and its chained run's) all go into "
        "--model-card",
    )
    parser.add_argument("--compare", nargs="+", metavar="METRICS", help="compare runs: two or more metrics.json")
    parser.add_argument("--out", help="with --compare: folder for comparison.md and comparison.png")
    parser.add_argument("--names", help="with --compare: comma-separated column names, one per run")
    parser.add_argument(
        "--allow-mixed", action="store_true", help="with --compare: compare runs on other corpus builds or decoding"
    )
    parser.add_argument("--model-card", help="a model card (README.md) whose metadata gets the eval results")
    parser.add_argument(
        "--dataset-id",
        help="Hub id of the evaluation corpus (default: <corpus>/hub_push.json of `mmaff push-dataset`, else the "
        "model card's `datasets`, else the corpus name)",
    )
    parser.add_argument("--model-name", help="model name in the model-index (default: from the predictions)")
    args = parser.parse_args(argv)
    if args.compare:
        _compare(args)
        return
    if not args.metrics:
        parser.error("--metrics or --compare is required")
    for metrics in args.metrics:
        check_file("--metrics", metrics, "give the metrics.json that `python -m mmaff.score --out DIR` wrote in DIR")
    check_file("--model-card", args.model_card, "give an existing model card (README.md)")
    reports = []
    for metrics in args.metrics:
        report = json.loads(Path(metrics).read_text(encoding="utf-8"))
        out = Path(metrics).parent
        _write_atomic(out / "results.md", results_markdown(report))
        _write_atomic(
            out / "eval_results.yaml", model_index_yaml(report, dataset_id=args.dataset_id, model_name=args.model_name)
        )
        print(f"wrote {out / 'results.md'}, {out / 'eval_results.yaml'}")
        reports.append(report)
    if args.model_card:
        add_to_model_card(args.model_card, reports, dataset_id=args.dataset_id, model_name=args.model_name)
        print(f"updated the eval results of {args.model_card}")


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli

    run_cli(main)
