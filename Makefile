# hdf-lightning: `make demo` trains and tests HDF on synthetic data; `make test` runs the tests.
# Both create the virtual environment on first use and reuse it afterwards.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are installed first, pinned to the builds this project is tested with;
# override e.g. `make TORCH_SPEC="torch torchvision" test` on another machine.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
DEMO_CONFIG ?= configs/demo.yaml
DEMO_DIR ?= runs/demo

.PHONY: venv demo test test-fast lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/hdf fit --config $(DEMO_CONFIG) --overwrite true
	$(BIN)/hdf test --config $(DEMO_DIR)/config.yaml --ckpt_path $(DEMO_DIR)/checkpoints/best.ckpt

test: $(STAMP)
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts notebooks
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_sam.py
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_extract.py

clean:
	rm -rf runs data/synthetic_dfew lightning_logs wandb .pytest_cache .mypy_cache .ruff_cache
