"""`python -m mmaff.synth` / `mmaff synth`: generate a synthetic multi-label emotion corpus from a recipe.

    mmaff synth --recipe recipes/synth/paper23.yaml --out data/raw-synth --base-url http://localhost:8000/v1
    mmaff build --raw-root data/raw-synth --datasets synthetic_emotions --out data/synth-corpus

Rerunning with the same --out resumes: answers already in --out/cache are not asked again.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmaff synth", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--recipe", type=Path, required=True, help="recipe YAML (recipes/synth/*.yaml)")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumable: rerun with the same one)")
    p.add_argument("--base-url", help="the server's /v1 URL (default: the recipe's generation.base_url)")
    p.add_argument("--model", help="served model name (default: the recipe's generation.model)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default: the recipe's)")
    p.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key (unset: none sent)"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from mmaff.eval.cli_common import run_cli
    from mmaff.eval.openai_backend import APIError
    from mmaff.synth.pipeline import RecipeError, load_recipe, run

    def go() -> None:
        if args.concurrency is not None and args.concurrency < 1:
            raise RecipeError(f"--concurrency {args.concurrency}: needs at least 1")
        recipe = load_recipe(args.recipe)
        report = run(
            recipe,
            args.out,
            base_url=args.base_url,
            model=args.model,
            concurrency=args.concurrency,
            api_key=os.environ.get(args.api_key_env),
            plots=not args.no_plots,
        )
        totals = report["totals"]
        print(
            f"{args.out}: kept {totals[report['stages'][-1]]} of {totals['requested']} planned; "
            f"report {args.out / 'generation_report.md'}",
            file=sys.stderr,
        )

    run_cli(go, extra=(RecipeError, APIError, ValueError))


if __name__ == "__main__":
    main()
