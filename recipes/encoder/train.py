"""Encoder recipes: one script over the YAMLs of this folder (the body: mmaff.baselines.encoder).

accelerate launch recipes/encoder/train.py --config recipes/encoder/xlmr_large_synthetic.yaml [--field value ...]
"""

from mmaff.baselines.encoder import TaskError, main
from mmaff.eval.cli_common import run_cli
from mmaff.workers import stop_with_launcher

if __name__ == "__main__":
    stop_with_launcher()
    run_cli(main, extra=(TaskError,))
