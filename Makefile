# The stable interface. Variables: RAW_ROOT (raw data root; default: bundled sample), DATASETS (a,b), OUT.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
RAW_ROOT ?=
DATASETS ?=
OUT ?= data/mmaffin
MIXTURE ?= data_builders/mixtures/mmaffin.yaml
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup build-mmaffin test test-fast quality style bench-build sample-data clean

setup: $(BIN)/.installed  ## create .venv and install the pinned stack + this package (editable)

$(BIN)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

build-mmaffin: setup  ## build the MMAFFIn corpus into $(OUT) from $(RAW_ROOT) (default: bundled sample)
	$(BIN)/python -m mmaff.build --out $(OUT) --mixture $(MIXTURE) $(if $(RAW_ROOT),--raw-root $(RAW_ROOT)) $(if $(DATASETS),--datasets $(DATASETS))

test: setup  ## all tests (CPU, offline); the real-data tier runs when ../shared/realdata exists
	$(BIN)/python -m pytest -q tests

quality: setup  ## lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-build: setup  ## text-build throughput and peak RSS on generated 100k / 1M-row inputs
	$(BIN)/python benchmarks/bench_build.py

sample-data: setup  ## regenerate the binary parts of the bundled sample (MMS parquet)
	$(BIN)/python data_builders/sample_raw/make_binary_samples.py

clean:
	rm -rf data outputs .pytest_cache .ruff_cache
