"""The one body behind recipes/sft_*.py and `mmaff train`: a recipe script only chooses its model's recipe folder.

Light on purpose: `launch` arms the launcher-death signal (`mmaff.workers.stop_with_launcher`) before torch, TRL
and `mmaff.train.sft` load, so a rank whose launcher is killed during those seconds of imports dies too."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mmaff.paths import DS_CONFIGS_DIR, PROJECT_ROOT, RECIPES_DIR
from mmaff.workers import stop_with_launcher

# recipes/<model>/sft/ -> the recipe a single process trains without --config (as recipes/sft_<size>.py choose)
SINGLE_PROCESS_DEFAULT = {"qwen2.5-vl-7b": "lora", "qwen2.5-vl-3b": "full"}
SEVERAL_PROCESSES = f"""\
several processes (GPUs, nodes): the same command under accelerate, with a config from {DS_CONFIGS_DIR}/accelerate/
(their deepspeed_config_file is relative to the working directory: run from {PROJECT_ROOT}):
  accelerate launch --config_file ds_configs/accelerate/zero3.yaml -m mmaff.train.launch \\
      --config {RECIPES_DIR}/qwen2.5-vl-7b/sft/config_full.yaml [--field value ...]
Every other argument is a training field (recipe YAML < command line); their full list follows this help."""


def launch(recipes: Path, single_process: str, argv: Sequence[str] | None = None) -> None:
    """Train with `--config` from the command line, else `recipes/config_full.yaml` when several processes train
    and `recipes/config_<single_process>.yaml` for one (`mmaff.train.sft.default_recipe`)."""
    stop_with_launcher()
    from mmaff.train.sft import default_recipe, main

    main(None if argv is None else list(argv), default_config=default_recipe(recipes, single_process=single_process))


def main(argv: Sequence[str] | None = None) -> None:
    """`mmaff train` / `python -m mmaff.train.launch`: what `accelerate launch recipes/sft_<size>.py` runs, in this
    process (one process: `python -m`; several: the module under `accelerate launch -m`)."""
    parser = argparse.ArgumentParser(
        prog="mmaff train",
        description="Fine-tune Qwen2.5-VL on a built corpus (mmaff.train.sft).",
        epilog=SEVERAL_PROCESSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument(
        "--recipes",
        choices=SINGLE_PROCESS_DEFAULT,
        default="qwen2.5-vl-7b",
        help="model whose recipe folder gives the default --config: config_full.yaml for several processes, "
        "else config_lora.yaml (7b) / config_full.yaml (3b) (default: %(default)s)",
    )
    known, rest = parser.parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        parser.print_help()
        print()
    launch(RECIPES_DIR / known.recipes / "sft", SINGLE_PROCESS_DEFAULT[known.recipes], rest)


if __name__ == "__main__":
    main(sys.argv[1:])
