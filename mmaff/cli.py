"""The `mmaff` command: one console script, each subcommand the `main(argv)` of one module.

    mmaff build --out data/mmaffin          # = python -m mmaff.data.build --out data/mmaffin
    mmaff score --predictions p.jsonl --corpus data/mmaffin --out results/
    mmaff <subcommand> --help               # that module's own help

`mmaff <subcommand> ...` is `python -m <module> ...` (same main(argv), error lines and exit status). Modules load
only when their subcommand runs (`mmaff --help` imports no torch); one that is not installed is a one-line error.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from collections.abc import Sequence

# subcommand -> (module whose main(argv) runs it, one line for `mmaff --help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "build": ("mmaff.data.build", "build the corpus from raw dataset files (default: the bundled sample)"),
    "train": (
        "mmaff.train.launch",
        "fine-tune Qwen2.5-VL on a corpus (one process; `--help` says how to run several)",
    ),
    "generate": ("mmaff.eval.generate", "generate predictions for a corpus split (HF, OpenAI-compatible, vLLM)"),
    "likelihood": ("mmaff.eval.likelihood", "score every label's likelihood for the ranking metrics"),
    "score": ("mmaff.eval.score", "score a predictions file against the corpus (metrics.json, results.md, plots)"),
    "report": ("mmaff.eval.report", "tables and model-card entries from one or several scored runs"),
    "chained": ("mmaff.eval.chained", "two-step evaluation: a task's answer fed into the next prompt"),
    "export": ("mmaff.hub.export", "export the corpus to another format: export llamafactory CORPUS OUT"),
    "import": ("mmaff.data.imports", "import released test files into records: import mmaffben FILE"),
    "push-dataset": ("mmaff.hub.push_dataset", "push the corpus to the Hugging Face Hub (or --dry-run to a folder)"),
    "push-model": ("mmaff.train.push_model", "push a finished training run to the Hugging Face Hub with its card"),
    "synth": ("mmaff.synth", "generate a synthetic multi-label emotion corpus on an OpenAI-compatible server"),
    "encoder": ("mmaff.baselines.encoder", "train / evaluate an encoder classifier baseline on a corpus task"),
    "seq2seq": ("mmaff.baselines.seq2seq", "train / evaluate a seq2seq (mT5-style) baseline on MASIVE's spans"),
    "zero-shot": ("mmaff.baselines.zero_shot", "score GoEmotions / SemEval E-c in the synthetic 11-label space"),
}
USAGE_EXIT = 2


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return (
        "usage: mmaff <subcommand> [arguments ...]\n\n"
        "Multimodal instruction tuning for affective analysis: corpus, training, evaluation, publishing.\n\n"
        "subcommands:\n" + "\n".join(lines) + "\n\n"
        "`mmaff <subcommand> --help` shows its arguments; `python -m <module>` runs the same code.\n"
    )


def _installed(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:  # its package is missing
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), end="", file=sys.stderr)
        return USAGE_EXIT
    if args[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(
            f"error: unknown subcommand {name!r}; choose from {', '.join(SUBCOMMANDS)} (mmaff --help)", file=sys.stderr
        )
        return USAGE_EXIT
    module_name = SUBCOMMANDS[name][0]
    if not _installed(module_name):
        print(
            f"error: mmaff {name}: {module_name} is not part of this installation (reinstall mmaff)", file=sys.stderr
        )
        return USAGE_EXIT
    # exactly `python -m <module>`: its own main(argv), error lines and exit status (a SystemExit passes through)
    sys.argv = [f"mmaff {name}", *rest]
    runpy.run_module(module_name, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
