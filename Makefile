# The stable interface. Variables: RAW_ROOT (raw data root; default: bundled sample), DATASETS (a,b), OUT.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
RAW_ROOT ?=
DATASETS ?=
OUT ?= data/mmaffin
MIXTURE ?= data_builders/mixtures/mmaffin.yaml
TINY_MODEL ?= outputs/tiny-qwen2.5-vl
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup build-mmaffin tiny-model train-smoke eval-smoke score test test-reliability test-fast quality style bench-build bench-packing sample-data clean

setup: $(BIN)/.installed  ## create .venv and install the pinned stack + this package (editable)

$(BIN)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

build-mmaffin: setup  ## build the MMAFFIn corpus into $(OUT) from $(RAW_ROOT) (default: bundled sample)
	$(BIN)/python -m mmaff.build --out $(OUT) --mixture $(MIXTURE) $(if $(RAW_ROOT),--raw-root $(RAW_ROOT)) $(if $(DATASETS),--datasets $(DATASETS))

tiny-model: setup  ## a tiny random Qwen2.5-VL with the real Qwen2.5 vocabulary and processor, offline -> $(TINY_MODEL)
	$(BIN)/python -m mmaff.tiny_model --out $(TINY_MODEL)

train-smoke: tiny-model  ## CPU end-to-end training: tiny model, bundled corpus, LoRA, 2 processes -> outputs/smoke/
	test -f $(OUT)/manifest.json || $(MAKE) build-mmaffin
	OMP_NUM_THREADS=1 $(BIN)/accelerate launch --config_file ds_configs/accelerate/cpu_2proc.yaml recipes/sft_7b.py \
		--config recipes/smoke/config_lora.yaml --model_name_or_path $(TINY_MODEL) --corpus $(OUT)

eval-smoke: tiny-model  ## CPU end-to-end evaluation: tiny model on the bundled test split -> outputs/eval-smoke/
	test -f $(OUT)/manifest.json || $(MAKE) build-mmaffin
	rm -rf outputs/eval-smoke  # a fresh run: a file of an earlier run with other decoding would be refused
	$(BIN)/python -m mmaff.generate --backend hf --model $(TINY_MODEL) --corpus $(OUT) --split test \
		--out outputs/eval-smoke/predictions.jsonl --batch-size 8
	$(BIN)/python -m mmaff.likelihood --model $(TINY_MODEL) --corpus $(OUT) --split test \
		--out outputs/eval-smoke/label_scores.jsonl
	$(BIN)/python -m mmaff.score --predictions outputs/eval-smoke/predictions.jsonl --corpus $(OUT) \
		--label-scores outputs/eval-smoke/label_scores.jsonl --out outputs/eval-smoke
	$(BIN)/python -m mmaff.chained --backend hf --model $(TINY_MODEL) --corpus $(OUT) --split test \
		--out outputs/eval-smoke/chained/predictions.jsonl --batch-size 8 --score-out outputs/eval-smoke/chained
	$(BIN)/python -m mmaff.chained --report outputs/eval-smoke/metrics.json outputs/eval-smoke/chained/metrics.json \
		outputs/eval-smoke/metrics.json --report-out outputs/eval-smoke/chained/comparison.md

# make score PRED=<predictions.jsonl> CORPUS=<built corpus dir> OUT=<dir>  (OUT defaults to outputs/scores here)
score: setup  ## score an id-keyed predictions JSONL (both modes) -> $(OUT)/{metrics.json,results.md,plots/,...}
	$(BIN)/python -m mmaff.score --predictions $(PRED) --corpus $(or $(CORPUS),data/mmaffin) $(if $(LABEL_SCORES),--label-scores $(LABEL_SCORES)) \
		--out $(if $(filter command line,$(origin OUT)),$(OUT),outputs/scores)

test: setup  ## all tests (CPU, offline); the real-data tier runs when ../shared/realdata exists
	$(BIN)/python -m pytest -q tests

test-reliability: setup  ## the integrity / security / fault tier alone (README "Guarantees"; part of `make test`)
	$(BIN)/python -m pytest -q tests/reliability

quality: setup  ## lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-build: setup  ## text-build throughput and peak RSS on generated 100k / 1M-row inputs
	$(BIN)/python benchmarks/bench_build.py

bench-packing: tiny-model  ## real-token fraction: padded vs padding-free vs packed rows on the built corpus
	test -f $(OUT)/manifest.json || $(MAKE) build-mmaffin
	$(BIN)/python benchmarks/bench_packing.py --corpus $(OUT) --model $(TINY_MODEL)

sample-data: setup  ## regenerate the binary parts of the bundled sample (MMS parquet)
	$(BIN)/python data_builders/sample_raw/make_binary_samples.py

clean:
	rm -rf data outputs .pytest_cache .ruff_cache
