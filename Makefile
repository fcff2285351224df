# Two entry points, each complete on a fresh machine:
#   make run   - set everything up, then reconstruct the bundled example portrait into out/astronaut/
#   make test  - set everything up (and the pinned npm 3DGS viewers of tests/viewers), lint (ruff), then run the test suite
#                (GPU tests skip without a GPU)
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel; on a CUDA machine use e.g. `make TORCH_SPEC="torch" run` to get the CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup run lint test test-gpu bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" setuptools wheel ninja numpy
	$(BIN)/pip install -q --no-build-isolation -e ".[dev,preprocess,eval]"

run: setup
	$(BIN)/a3d reconstruct demo/examples/astronaut.jpg -o out/ --ply --splat --video
	@echo "wrote out/astronaut/: head.ply, head.splat, orbit.mp4, input.png, a3d_cameras.json, metadata.json"

lint: setup
	$(BIN)/ruff check a3d tests bench demo scripts

test: lint
	bash demo/ci_setup.sh $(BIN)
	npm ci --prefix tests/viewers --no-audit --no-fund
	bash scripts/pytest.sh $(BIN)/python

bench: setup
	$(BIN)/python bench/bench_rasterize.py

clean:
	rm -rf build *.egg-info a3d/_C*.so out
