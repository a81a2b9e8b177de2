"""ds_configs/: DeepSpeed JSONs resolve through the HF Trainer route; accelerate YAMLs load and are launchable.

No launches here (see ds_configs/README.md for the real 2-process CPU runs). Everything goes through the same
code the launcher and the ranks use: ``HfTrainerDeepSpeedConfig`` + ``DeepSpeedConfig`` for the JSONs,
accelerate's ``load_config_from_file`` and ``DeepSpeedPlugin`` for the YAMLs.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DS_DIR = ROOT / "ds_configs"
ACC_DIR = DS_DIR / "accelerate"

# file -> (zero stage, offloaded)
JSONS = {"zero2.json": (2, False), "zero3.json": (3, False), "zero3_offload.json": (3, True)}

# file -> (distributed_type, num_processes, num_machines, deepspeed json or None, zero3_init_flag)
YAMLS = {
    "single_gpu.yaml": ("NO", 1, 1, None, None),
    "ddp.yaml": ("MULTI_GPU", 8, 1, None, None),
    "zero2.yaml": ("DEEPSPEED", 8, 1, "zero2.json", None),
    "zero3.yaml": ("DEEPSPEED", 8, 1, "zero3.json", True),
    "zero3_offload.yaml": ("DEEPSPEED", 8, 1, "zero3_offload.json", True),
    "multi_node_zero3.yaml": ("DEEPSPEED", 16, 2, "zero3.json", True),
    "cpu_2proc.yaml": ("MULTI_GPU", 2, 1, None, None),
    "cpu_2proc_zero2.yaml": ("DEEPSPEED", 2, 1, "zero2.json", None),
    "cpu_2proc_zero3.yaml": ("DEEPSPEED", 2, 1, "zero3.json", True),
}

HIDDEN = 3584  # Qwen2.5-VL-7B text hidden size: what the "auto" bucket sizes are derived from
ACCELERATE_ENV = (
    "ACCELERATE_USE_DEEPSPEED",
    "ACCELERATE_DEEPSPEED_CONFIG_FILE",
    "ACCELERATE_CONFIG_DS_FIELDS",
    "ACCELERATE_MIXED_PRECISION",
    "ACCELERATE_USE_CPU",
    "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
    "ACCELERATE_GRADIENT_CLIPPING",
    "ACCELERATE_DEEPSPEED_ZERO_STAGE",
    "ACCELERATE_DEEPSPEED_ZERO3_INIT",
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL",
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE",
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No launcher state leaking in: a plain single-process run, as if started with ``python``."""
    for name in (*ACCELERATE_ENV, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def find_strings(obj: Any, needle: str, path: str = "") -> list[str]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in find_strings(v, needle, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in find_strings(v, needle, f"{path}[{i}]")]
    return [path] if obj == needle else []


def test_file_sets_are_complete() -> None:
    assert sorted(p.name for p in DS_DIR.glob("*.json")) == sorted(JSONS)
    assert sorted(p.name for p in ACC_DIR.glob("*.yaml")) == sorted(YAMLS)
    assert (DS_DIR / "README.md").is_file()


# ---------------------------------------------------------------- DeepSpeed JSON


@pytest.mark.parametrize("name", sorted(JSONS))
def test_json_shape(name: str) -> None:
    raw = json.loads((DS_DIR / name).read_text(encoding="utf-8"))
    stage, offload = JSONS[name]
    # DeepSpeed computes train_batch_size = micro * GAS * its own world size; an explicit "auto" would be filled
    # from TrainingArguments.world_size instead, and the two disagree when accelerate and DeepSpeed count ranks
    # differently (CPU launches, zero.Init before the engine exists) -> DeepSpeed's batch assertion fails.
    assert "train_batch_size" not in raw
    assert "optimizer" not in raw and "scheduler" not in raw  # the HF Trainer builds both
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert raw[key] == "auto", key
    assert raw["bf16"]["enabled"] == "auto" and raw["fp16"]["enabled"] == "auto"
    assert raw["zero_allow_untested_optimizer"] is True
    assert raw["wall_clock_breakdown"] is False and raw["steps_per_print"] >= 10**6
    zo = raw["zero_optimization"]
    assert zo["stage"] == stage
    assert zo["overlap_comm"] is False and zo["contiguous_gradients"] is True
    assert zo["reduce_bucket_size"] == "auto"
    if stage == 3:
        assert zo["stage3_gather_16bit_weights_on_model_save"] is True
        for key in ("stage3_prefetch_bucket_size", "stage3_param_persistence_threshold"):
            assert zo[key] == "auto", key
        for key in ("sub_group_size", "stage3_max_live_parameters", "stage3_max_reuse_distance"):
            assert zo[key] == 1e9, key
    else:
        assert zo["allgather_partitions"] is True and zo["reduce_scatter"] is True
        assert zo["allgather_bucket_size"] == 5e8
    for part in ("offload_optimizer", "offload_param"):
        if offload:
            assert zo[part] == {"device": "cpu", "pin_memory": True}, part
        else:
            assert part not in zo, part


@pytest.mark.parametrize("name", sorted(JSONS))
def test_json_resolves_through_hf_trainer(name: str, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import Qwen2_5_VLConfig, TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    stage, offload = JSONS[name]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        bf16=False,
        use_cpu=True,
        report_to="none",
        deepspeed=None,
    )
    hf = HfTrainerDeepSpeedConfig(str(DS_DIR / name))
    hf.trainer_config_process(args)
    model = SimpleNamespace(config=Qwen2_5_VLConfig(text_config={"hidden_size": HIDDEN}))
    hf.trainer_config_finalize(args, model=model, num_training_steps=10)

    assert find_strings(hf.config, "auto") == []
    assert hf.is_zero3() is (stage == 3)
    assert hf.is_offload() is offload
    cfg = hf.config
    assert cfg["train_micro_batch_size_per_gpu"] == 2 and cfg["gradient_accumulation_steps"] == 4
    assert cfg["gradient_clipping"] == args.max_grad_norm
    assert cfg["bf16"]["enabled"] is False and cfg["fp16"]["enabled"] is False
    zo = cfg["zero_optimization"]
    assert zo["reduce_bucket_size"] == HIDDEN * HIDDEN
    if stage == 3:
        assert zo["stage3_prefetch_bucket_size"] == int(0.9 * HIDDEN * HIDDEN)
        assert zo["stage3_param_persistence_threshold"] == 10 * HIDDEN

    ds = DeepSpeedConfig(cfg)  # DeepSpeed's own parser: raises on anything it cannot take
    assert ds.zero_optimization_stage == stage
    assert ds.train_micro_batch_size_per_gpu == 2 and ds.gradient_accumulation_steps == 4
    assert ds.train_batch_size == 2 * 4 * ds.world_size  # derived by DeepSpeed, not taken from the file
    assert ds.zero_config.overlap_comm is False
    if stage == 3:
        assert ds.zero_config.gather_16bit_weights_on_model_save is True
    assert (ds.zero_config.offload_optimizer is not None) is offload
    assert (ds.zero_config.offload_param is not None) is offload


# ---------------------------------------------------------------- accelerate YAML


def deepspeed_yaml_keys() -> set[str]:
    """Keys accelerate launch understands inside ``deepspeed_config:`` (its "DeepSpeed Arguments" group)."""
    from accelerate.commands.launch import launch_command_parser

    groups = launch_command_parser()._action_groups
    (group,) = [g for g in groups if g.title == "DeepSpeed Arguments"]
    return {action.dest for action in group._group_actions}


def load(name: str):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(str(ACC_DIR / name))


@pytest.mark.parametrize("name", sorted(YAMLS))
def test_yaml_loads_with_expected_values(name: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    dist_type, nproc, nmachines, ds_json, init_flag = YAMLS[name]
    raw = yaml.safe_load((ACC_DIR / name).read_text(encoding="utf-8"))
    # accelerate's loader raises on unknown top-level keys itself (test_loader_rejects_unknown_keys); check too,
    # so a typo fails here with a clear message
    assert set(raw) <= set(ClusterConfig.__dataclass_fields__), set(raw) - set(ClusterConfig.__dataclass_fields__)
    # ...but it does not look inside deepspeed_config: launch copies those keys onto its args unchecked
    ds_block = raw.get("deepspeed_config") or {}
    assert set(ds_block) <= deepspeed_yaml_keys(), set(ds_block) - deepspeed_yaml_keys()

    cfg = load(name)
    assert cfg.distributed_type.value == dist_type
    assert cfg.num_processes == nproc and cfg.num_machines == nmachines
    assert cfg.use_cpu is False  # use_cpu true makes accelerate start one process (README)
    assert cfg.compute_environment.value == "LOCAL_MACHINE"
    if ds_json is None:
        assert cfg.deepspeed_config == {}
        expected_mp = "no" if name.startswith("cpu_") else "bf16"
        assert cfg.mixed_precision == expected_mp
    else:
        ds_file = cfg.deepspeed_config["deepspeed_config_file"]
        assert not Path(ds_file).is_absolute() and ds_file == f"ds_configs/{ds_json}"
        assert (ROOT / ds_file).is_file()
        assert cfg.deepspeed_config.get("zero3_init_flag") is init_flag
        assert cfg.mixed_precision is None  # precision comes from the JSON ("auto" -> TrainingArguments.bf16)
    if nmachines > 1:
        assert cfg.deepspeed_config.get("deepspeed_multinode_launcher") == "standard"
        assert cfg.same_network is True and cfg.rdzv_backend == "static"
        assert cfg.machine_rank == 0 and cfg.main_process_ip and cfg.main_process_port
    if name.startswith("cpu_"):
        assert cfg.main_process_port == 29541 and cfg.main_process_ip == "127.0.0.1"


@pytest.mark.parametrize("name", sorted(n for n, v in YAMLS.items() if v[3]))
def test_deepspeed_yaml_passes_rank_side_checks(name: str, clean_env: pytest.MonkeyPatch) -> None:
    """Replays what a rank does with these launcher env vars: DeepSpeedPlugin refuses duplicated settings."""
    from accelerate.utils import DeepSpeedPlugin

    cfg = load(name)
    # accelerate launch: the deepspeed_config keys, plus "mixed_precision" when the YAML (not the CLI) sets it
    fields = list(cfg.deepspeed_config) + (["mixed_precision"] if cfg.mixed_precision is not None else [])
    clean_env.setenv("ACCELERATE_CONFIG_DS_FIELDS", ",".join(fields).lower())
    clean_env.setenv("ACCELERATE_DEEPSPEED_ZERO3_INIT", str(cfg.deepspeed_config.get("zero3_init_flag", False)))
    plugin = DeepSpeedPlugin(hf_ds_config=str(ROOT / cfg.deepspeed_config["deepspeed_config_file"]))
    stage = JSONS[YAMLS[name][3]][0]
    assert plugin.zero_stage == stage
    assert plugin.zero3_init_flag is bool(YAMLS[name][4])
    if stage == 3:
        assert plugin.zero3_save_16bit_model is True  # from the JSON, since the YAML may not say it


@pytest.mark.parametrize(
    "extra", [{"mixed_precision": "bf16"}, {"mixed_precision": "no"}, {"zero3_save_16bit_model": True}]
)
def test_duplicated_keys_next_to_deepspeed_config_file_are_refused(
    extra: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    """Pins the accelerate behaviour the YAMLs rely on; if this starts passing, the README note can go."""
    from accelerate.utils import DeepSpeedPlugin

    fields = ["deepspeed_config_file", "zero3_init_flag", *extra]
    clean_env.setenv("ACCELERATE_CONFIG_DS_FIELDS", ",".join(fields))
    with pytest.raises(ValueError, match="deepspeed_config_file"):
        DeepSpeedPlugin(hf_ds_config=str(DS_DIR / "zero3.json"))


def test_loader_rejects_unknown_keys(tmp_path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    bad = yaml.safe_load((ACC_DIR / "cpu_2proc.yaml").read_text(encoding="utf-8"))
    bad["num_process"] = 2  # typo
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown keys"):
        load_config_from_file(str(path))
