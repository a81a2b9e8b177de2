"""Qwen2.5-VL-7B supervised fine-tuning on the MMAFFIn corpus (the body: mmaff.train.launch, mmaff.train.sft).

    accelerate launch --config_file ds_configs/accelerate/zero3.yaml recipes/sft_7b.py \
        --config recipes/qwen2.5-vl-7b/sft/config_full.yaml [--field value ...]

Without --config: recipes/qwen2.5-vl-7b/sft/config_full.yaml when several processes train, config_lora.yaml for a
single process. 7B full fine-tuning needs ZeRO-3 over several GPUs, so a single-process launch defaults to LoRA.
"""

from pathlib import Path

from mmaff.train.launch import launch

if __name__ == "__main__":
    launch(Path(__file__).resolve().parent / "qwen2.5-vl-7b" / "sft", single_process="lora")
