"""What the evaluation command lines share: comma lists (`--datasets a,b`, the build's syntax, or space-separated),
selection checks that name the fix, a help formatter that shows defaults, and `run_cli`, which turns the errors a
user can fix into one ``error: ...`` line on stderr and exit status 2 (no traceback)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

USAGE_EXIT = 2  # argparse's status for a bad command line


class CliError(ValueError):
    """A command line that cannot run as given; the message names the fix."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where the help already says it, the flag is required, or there is none
    (None: the help says what happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if "default" in help or action.required or action.default in (None, argparse.SUPPRESS, False):
            return help
        return super()._get_help_string(action)


def comma_list(values: Iterable[str]) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: comma- and space-separated lists alike, empty pieces dropped."""
    return [piece.strip() for value in values for piece in value.split(",") if piece.strip()]


class CommaList(argparse.Action):
    """``--flag a,b c``: one flat list, whichever separator (and repeated flags add up)."""

    def __init__(
        self, option_strings: Sequence[str], dest: str, allowed: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("nargs", "+")
        super().__init__(option_strings, dest, **kwargs)
        self.allowed = allowed  # checked after splitting: argparse's `choices` would check "a,b" as one value

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ):
        pieces = comma_list([values] if isinstance(values, str) else values)
        unknown = [p for p in pieces if self.allowed is not None and p not in self.allowed]
        if unknown:
            parser.error(f"{option}: unknown {', '.join(unknown)} (choose from {', '.join(self.allowed or ())})")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *pieces])


def add_comma_list(
    parser: argparse.ArgumentParser | Any, flag: str, help: str, allowed: Sequence[str] | None = None, default=None
) -> None:
    """A comma-list flag (``a,b`` or ``a b``), its values checked against `allowed` after splitting."""
    parser.add_argument(flag, action=CommaList, metavar="NAME", help=help, allowed=allowed, default=default)


def check_known(kind: str, asked: Sequence[str] | None, known: Iterable[str], fix: str) -> None:
    """An error naming the unknown names of `asked` among `known`, and where the known ones come from."""
    known = sorted(set(known))
    unknown = [name for name in asked or () if name not in known]
    if unknown:
        raise CliError(f"unknown {kind} {', '.join(unknown)} (known: {', '.join(known) or 'none'}); {fix}")


def check_model(model: str) -> None:
    """A model path that looks local must exist (else transformers would try the Hub and fail with a traceback)."""
    from mmaff.encode.corpus import looks_local

    if not Path(model).expanduser().exists() and looks_local(model):
        raise CliError(
            f"--model {model}: no such folder; give a checkpoint folder (e.g. outputs/<run>/merged, "
            "`make tiny-model` for a test model) or a Hub id such as Qwen/Qwen2.5-VL-7B-Instruct"
        )


def check_file(flag: str, path: str | Path | None, fix: str) -> None:
    if path is not None and not Path(path).is_file():
        raise CliError(f"{flag} {path}: no such file; {fix}")


def scoring_inputs(predictions: str, label_scores: str | None, corpus: str) -> Path:
    """The corpus folder to score against, after checking the predictions and label-score files exist (one-line
    errors naming the flag and the command that writes the file)."""
    from mmaff.encode.corpus import open_corpus

    check_file("--predictions", predictions, "give the --out file of `python -m mmaff.generate`")
    check_file("--label-scores", label_scores, "give the --out file of `python -m mmaff.likelihood`")
    return open_corpus(corpus).root


def corpus_datasets(manifest: Mapping[str, Any], root: Path, split: str) -> set[str]:
    """The datasets of a built corpus: the manifest's, and those with a file in `split`."""
    from mmaff.encode.corpus import _dataset_of

    return set(manifest.get("datasets", {})) | {_dataset_of(p) for p in (root / split).glob("*.jsonl")}


def nonempty(records: Sequence[Any], what: str, fix: str) -> None:
    if not records:
        raise CliError(f"no {what} selected; {fix}")


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean a fixable input (raised by the code with a message naming it)."""
    from mmaff.encode.corpus import CorpusError
    from mmaff.eval.predictions import PredictionFileError
    from mmaff.eval.tasks import TaskError

    return (CliError, CorpusError, TaskError, PredictionFileError, FileNotFoundError)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def run_cli(main: Callable[[], Any], extra: tuple[type[BaseException], ...] = ()) -> None:
    """Run a CLI's `main`; a user error is one ``error: ...`` line on stderr and exit status 2."""
    try:
        main()
    except (*user_errors(), *extra) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT) from None


def per_dataset_limit(records: Sequence[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """The first `limit` records of each dataset, in order."""
    if limit is None:
        return list(records)
    kept: dict[str, int] = {}
    chosen = []
    for record in records:
        if kept.get(record["dataset"], 0) < limit:
            kept[record["dataset"]] = kept.get(record["dataset"], 0) + 1
            chosen.append(record)
    return chosen


def task_names() -> list[str]:
    from mmaff.eval.tasks import load_tasks

    return list(load_tasks())


def selected_records(
    corpus: Any,
    split: str,
    *,
    datasets: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    modalities: Sequence[str] | None = None,
    limit: int | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The records a run covers, every name checked first: an unknown split, dataset or task, or a selection that
    leaves nothing, is a `CliError` naming the fix. `keep` filters further (before the per-dataset `limit`)."""
    from mmaff.encode.corpus import read_records
    from mmaff.eval.tasks import record_task

    splits = sorted(p.name for p in corpus.root.iterdir() if p.is_dir() and any(p.glob("*.jsonl")))
    if split not in splits:
        raise CliError(f"--split {split}: not in the corpus {corpus.root} (its splits: {', '.join(splits) or 'none'})")
    check_known("dataset", datasets, corpus_datasets(corpus.manifest, corpus.root, split), "see --datasets")
    if tasks:
        check_known("task", tasks, task_names(), "tasks are eval/tasks/<dataset>/<subtask>.yaml")
    records = read_records(corpus.root, split, datasets=datasets, modalities=modalities)
    records = [r for r in records if (not tasks or record_task(r) in tasks) and (keep is None or keep(r))]
    records = per_dataset_limit(records, limit)
    asked = {"datasets": datasets, "tasks": tasks, "modalities": modalities}
    given = ", ".join(f"--{k} {','.join(v)}" for k, v in asked.items() if v) or "no filter"
    nonempty(records, f"records in {corpus.root}/{split} ({given})", "widen the selection")
    return records


def open_selection(
    args: argparse.Namespace, *, model_is_path: bool, keep: Callable[[dict[str, Any]], bool] | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """What a generation CLI (generate, likelihood, chained) starts from: logging set up, the model folder checked
    (unless the model is a served name), the corpus opened and the records its arguments select."""
    import logging

    from mmaff.encode.corpus import open_corpus

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if model_is_path:
        check_model(args.model)
    corpus = open_corpus(args.corpus)
    records = selected_records(
        corpus,
        args.split,
        datasets=args.datasets,
        tasks=getattr(args, "tasks", None),
        modalities=args.modalities,
        limit=args.limit,
        keep=keep,
    )
    return corpus, records
