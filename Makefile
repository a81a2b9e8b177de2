# The stable interface. Variables: RAW_ROOT (raw data root; default: bundled sample), DATASETS (a,b), OUT.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
RAW_ROOT ?=
DATASETS ?=
OUT ?= data/mmaffin
MIXTURE ?= data_builders/mixtures/mmaffin.yaml
TINY_MODEL ?= outputs/tiny-qwen2.5-vl
# train-smoke -> SMOKE_OUT (its output_dir; SMOKE_ARGS: more recipe flags, e.g. --max_steps 2); the smoke recipe
# merges the adapter (merge_lora: true) into SMOKE_MODEL, which eval-smoke evaluates into EVAL_SMOKE_OUT, on the
# datasets EVAL_SMOKE_DATASETS (a,b; default: the whole test split)
SMOKE_OUT ?= outputs/smoke
SMOKE_MODEL ?= $(SMOKE_OUT)/merged
SMOKE_ARGS ?=
EVAL_SMOKE_OUT ?= outputs/eval-smoke
EVAL_SMOKE_DATASETS ?=
comma := ,
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup build-mmaffin tiny-model train-smoke eval-smoke score test test-reliability test-fast quality style bench-build bench-packing gpu-wheels sample-data synth-smoke seq2seq-smoke tiny-encoder encoder-smoke clean

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

train-smoke: tiny-model  ## CPU end-to-end training: tiny model, bundled corpus, LoRA, 2 processes -> $(SMOKE_OUT)/
	test -f $(OUT)/manifest.json || $(MAKE) build-mmaffin
	OMP_NUM_THREADS=1 $(BIN)/accelerate launch --config_file ds_configs/accelerate/cpu_2proc.yaml recipes/sft_7b.py \
		--config recipes/smoke/config_lora.yaml --model_name_or_path $(TINY_MODEL) --corpus $(OUT) \
		--output_dir $(SMOKE_OUT) $(SMOKE_ARGS)

# The model eval-smoke evaluates: the smoke-trained one when train-smoke has written it, else the untrained tiny
# model. `=` and a shell test (not $(wildcard), whose directory cache is stale): looked up when eval-smoke runs, so
# `make train-smoke eval-smoke` evaluates the model it has just trained.
SMOKE_TRAINED = $(shell test -f $(SMOKE_MODEL)/config.json && echo $(SMOKE_MODEL))
EVAL_MODEL = $(or $(SMOKE_TRAINED),$(TINY_MODEL))
EVAL_SELECTION = --corpus $(OUT) --split test $(if $(EVAL_SMOKE_DATASETS),--datasets $(EVAL_SMOKE_DATASETS))

# generate + label likelihoods + score: model $(1) on the test split -> folder $(2)
evaluate = $(BIN)/python -m mmaff.generate --backend hf --model $(1) $(EVAL_SELECTION) \
		--out $(2)/predictions.jsonl --batch-size 8 \
	&& $(BIN)/python -m mmaff.likelihood --model $(1) $(EVAL_SELECTION) --out $(2)/label_scores.jsonl \
	&& $(BIN)/python -m mmaff.score --predictions $(2)/predictions.jsonl --corpus $(OUT) \
		$(if $(EVAL_SMOKE_DATASETS),--datasets $(EVAL_SMOKE_DATASETS)) --label-scores $(2)/label_scores.jsonl --out $(2)

# Evaluation only: it never trains (`make train-smoke eval-smoke` does both).
eval-smoke: tiny-model  ## CPU end-to-end evaluation of $(SMOKE_MODEL) (else the untrained tiny model) on the bundled test split -> $(EVAL_SMOKE_OUT)/
	test -f $(OUT)/manifest.json || $(MAKE) build-mmaffin
	rm -rf $(EVAL_SMOKE_OUT)  # a fresh run: a file of an earlier run with other decoding would be refused
	@echo "eval-smoke: evaluating $(EVAL_MODEL) $(if $(SMOKE_TRAINED),(smoke-trained; baseline: the untrained \
		$(TINY_MODEL)),(untrained: no smoke-trained model at $(SMOKE_MODEL); make train-smoke writes it))"
	$(call evaluate,$(EVAL_MODEL),$(EVAL_SMOKE_OUT))
	$(BIN)/python -m mmaff.chained --backend hf --model $(EVAL_MODEL) $(EVAL_SELECTION) \
		--out $(EVAL_SMOKE_OUT)/chained/predictions.jsonl --batch-size 8 --score-out $(EVAL_SMOKE_OUT)/chained
	$(BIN)/python -m mmaff.chained --report $(EVAL_SMOKE_OUT)/metrics.json $(EVAL_SMOKE_OUT)/chained/metrics.json \
		$(EVAL_SMOKE_OUT)/metrics.json --report-out $(EVAL_SMOKE_OUT)/chained/comparison.md
	$(if $(SMOKE_TRAINED),$(call evaluate,$(TINY_MODEL),$(EVAL_SMOKE_OUT)/tiny-untrained))
	$(if $(SMOKE_TRAINED),$(BIN)/python -m mmaff.report --compare $(EVAL_SMOKE_OUT)/tiny-untrained/metrics.json \
		$(EVAL_SMOKE_OUT)/metrics.json --names tiny-untrained$(comma)smoke-trained --out $(EVAL_SMOKE_OUT)/compare, \
		echo "eval-smoke: comparison with the untrained tiny model skipped: no smoke-trained model at $(SMOKE_MODEL)")

# The synthetic-corpus pipeline against the loopback server (mmaff/testing/synth_server.py, started for the run)
synth-smoke: setup  ## synthetic generation end to end on the loopback server -> outputs/synth-smoke/ (report, plots)
	rm -rf outputs/synth-smoke
	$(BIN)/python -m mmaff.testing.synth_server -- $(BIN)/python -m mmaff.synth --recipe recipes/synth/smoke.yaml \
		--out outputs/synth-smoke --base-url {url}

# MASIVE's own model family (README "Seq2seq (MASIVE)"): a tiny random T5 built from a config with a tokenizer trained
# on the corpus text, a few CPU steps on the bundled MASIVE records, beam-search predictions, then mmaff.score (Acc@k)
SEQ2SEQ_SMOKE_OUT ?= outputs/seq2seq-smoke
seq2seq-smoke: setup  ## CPU end to end: tiny T5, bundled MASIVE records, Seq2seqTrainer, 5 beams -> $(SEQ2SEQ_SMOKE_OUT)/scores
	test -f $(OUT)/manifest.json || $(MAKE) build-mmaffin
	rm -rf $(SEQ2SEQ_SMOKE_OUT)
	$(BIN)/python -m mmaff.baselines.seq2seq tiny --corpus $(OUT) --out $(SEQ2SEQ_SMOKE_OUT)/tiny-t5
	$(BIN)/accelerate launch --num_processes 1 --cpu recipes/seq2seq/train.py --config recipes/seq2seq/smoke.yaml \
		--model_name_or_path $(SEQ2SEQ_SMOKE_OUT)/tiny-t5 --corpus $(OUT) --output_dir $(SEQ2SEQ_SMOKE_OUT)/model
	$(BIN)/python -m mmaff.score --predictions $(SEQ2SEQ_SMOKE_OUT)/model/predictions.jsonl --corpus $(OUT) \
		--tasks masive/ASI --out $(SEQ2SEQ_SMOKE_OUT)/scores --no-plots

# Encoder baselines (issue 15): the tiny offline encoder, a multi-label run and a two-head joint run, each scored
TINY_ENCODER ?= outputs/tiny-encoder
ENCODER_SMOKE_OUT ?= outputs/encoder-smoke
encoder_run = OMP_NUM_THREADS=1 $(BIN)/accelerate launch --num_processes 1 --cpu recipes/encoder/train.py \
		--config recipes/encoder/smoke_$(1).yaml --model_name_or_path $(TINY_ENCODER) --corpus $(OUT) \
		--output_dir $(ENCODER_SMOKE_OUT)/$(1) \
	&& $(BIN)/python -m mmaff.score --predictions $(ENCODER_SMOKE_OUT)/$(1)/predictions/predictions.jsonl \
		--corpus $(OUT) --tasks $(2) $(3) --out $(ENCODER_SMOKE_OUT)/$(1)/scores --no-plots

tiny-encoder: setup  ## a tiny random BERT + WordPiece tokenizer trained offline on $(OUT)'s texts -> $(TINY_ENCODER)
	test -f $(OUT)/manifest.json || $(MAKE) build-mmaffin
	$(BIN)/python -m mmaff.baselines.tiny_encoder --corpus $(OUT) --out $(TINY_ENCODER)

encoder-smoke: tiny-encoder  ## CPU: encoder recipes (multi-label xed/EC, two-head meld/EC+SP), scored -> $(ENCODER_SMOKE_OUT)/
	rm -rf $(ENCODER_SMOKE_OUT)
	$(call encoder_run,multilabel,xed/EC,--label-scores $(ENCODER_SMOKE_OUT)/multilabel/predictions/label_scores.jsonl)
	$(call encoder_run,joint,meld/EC+SP,)

# make score PRED=<predictions.jsonl> CORPUS=<built corpus dir> OUT=<dir>  (OUT defaults to outputs/scores here)
score: setup  ## score an id-keyed predictions JSONL (both modes) -> $(OUT)/{metrics.json,results.md,plots/,...}
	$(BIN)/python -m mmaff.score --predictions $(PRED) --corpus $(or $(CORPUS),data/mmaffin) $(if $(LABEL_SCORES),--label-scores $(LABEL_SCORES)) \
		$(if $(SIM_MODEL),--sim-model $(SIM_MODEL)) --out $(if $(filter command line,$(origin OUT)),$(OUT),outputs/scores)

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

gpu-wheels: setup  ## wheels of benchmarks/gpu_wheels.txt (cp312 manylinux) -> .whl/ for benchmarks/gpu_check.sh on a lent GPU (< 60 MiB)
	$(BIN)/pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl -r benchmarks/gpu_wheels.txt
	@total=$$(du -cb .whl/*.whl | tail -1 | cut -f1); echo ".whl/: $$total bytes"; \
		test $$total -lt 62914560 || { echo "error: .whl/ is $$total bytes, over the 60 MiB cap: trim benchmarks/gpu_wheels.txt" >&2; exit 2; }

sample-data: setup  ## regenerate the binary parts of the bundled sample (MMS parquet)
	$(BIN)/python data_builders/sample_raw/make_binary_samples.py

clean:
	rm -rf data outputs .pytest_cache .ruff_cache
