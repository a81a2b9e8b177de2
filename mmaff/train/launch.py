"""The one body behind recipes/sft_*.py: a recipe script only chooses its model's default recipe folder.

Light on purpose: `launch` arms the launcher-death signal (`mmaff.workers.stop_with_launcher`) before torch, TRL
and `mmaff.train.sft` load, so a rank whose launcher is killed during those seconds of imports dies too."""

from __future__ import annotations

from pathlib import Path

from mmaff.workers import stop_with_launcher


def launch(recipes: Path, single_process: str) -> None:
    """Train with `--config` from the command line, else `recipes/config_full.yaml` when several processes train
    and `recipes/config_<single_process>.yaml` for one (`mmaff.train.sft.default_recipe`)."""
    stop_with_launcher()
    from mmaff.train.sft import default_recipe, main

    main(default_config=default_recipe(recipes, single_process=single_process))
