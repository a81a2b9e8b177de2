"""Qwen2.5-VL-7B supervised fine-tuning on the MMAFFIn corpus: a thin launcher over mmaff.train.sft.main.

    accelerate launch --config_file ds_configs/accelerate/zero3.yaml recipes/sft_7b.py \
        --config recipes/qwen2.5-vl-7b/sft/config_full.yaml [--field value ...]

Without --config: recipes/qwen2.5-vl-7b/sft/config_full.yaml when several processes train, config_lora.yaml for a
single process. 7B full fine-tuning needs ZeRO-3 over several GPUs, so a single-process launch defaults to LoRA.
"""

from pathlib import Path

from mmaff.workers import stop_with_launcher

stop_with_launcher()  # before the heavy imports: a rank must not outlive a launcher killed meanwhile

from mmaff.train.sft import default_recipe, main  # noqa: E402

RECIPES = Path(__file__).resolve().parent / "qwen2.5-vl-7b" / "sft"

if __name__ == "__main__":
    main(default_config=default_recipe(RECIPES, single_process="lora"))
