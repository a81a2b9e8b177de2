"""Qwen2.5-VL-3B supervised fine-tuning on the MMAFFIn corpus (the body: mmaff.train.launch, mmaff.train.sft).

    accelerate launch --config_file ds_configs/accelerate/zero3.yaml recipes/sft_3b.py \
        --config recipes/qwen2.5-vl-3b/sft/config_full.yaml [--field value ...]

Without --config: recipes/qwen2.5-vl-3b/sft/config_full.yaml, whether one process or several train: 3B full
fine-tuning fits one 80 GB GPU, so full is the default everywhere.
"""

from pathlib import Path

from mmaff.train.launch import launch

if __name__ == "__main__":
    launch(Path(__file__).resolve().parent / "qwen2.5-vl-3b" / "sft", single_process="full")
