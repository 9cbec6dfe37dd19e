# The two commands: `make up` (set up, then run the main job) and `make test` (set up, then
# run the whole suite). Both create .venv with the Python found as $(PYTHON) (3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: up dashboard lab test test-scale test-torch test-clarifai test-engines lint unit integration fuzz bench proto screenshots clean

# The CPU build of torch: on these machines this exact version is a wheel already on disk.
# Elsewhere pass TORCH_INDEX=https://download.pytorch.org/whl/cpu (the default torch on PyPI is
# a CUDA build of several GB), or TORCH='torch' for whatever your index has.
TORCH       ?= torch==2.13.0
# pytest workers (files are kept together on one worker: module fixtures start real stacks).
JOBS        ?= 2
TORCH_INDEX ?=

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("edge-runner needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The dashboard (Textual, pure Python) comes with `make up`: it is how you watch what `up` runs.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[tui]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

up: $(VENV)/.installed
	$(BIN)/edge-runner up examples/hello

# In another terminal while `make up` runs.
dashboard: $(VENV)/.installed
	$(BIN)/edge-runner dashboard

test: $(VENV)/.installed-dev lint
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile -m 'not scale'
	$(MAKE) --no-print-directory test-scale

# The scale-out suite (tests/scale/): real PostgreSQL (Debian's postgresql package; .ci/run
# installs it when missing), nats-server (from the dev extra) and several control-plane
# replicas. Serially, on its own: each test starts several processes and times recoveries.
# Skipped where a service is missing, except under CI=1 (.ci/run sets it): there it fails.
test-scale: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -p no:cacheprovider -m scale tests/scale

test-torch: $(VENV)/.installed-dev
	$(BIN)/python -m pip install -q '$(TORCH)' numpy $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pytest -m torch

# Real inference engines (tests/engines/): llama.cpp's server (llama-cpp-python, built from its
# source package with cmake: ~4.5 min on 2 cores the first time, then from pip's wheel cache) on
# a tiny model the tests generate. Installed into .venv with every installed package pinned, so
# its extras cannot move our fastapi/pydantic/uvicorn; a missing or broken engine fails here.
ENGINES      ?= llama-cpp-python[server]==0.3.36 gguf==0.19.0

$(VENV)/.installed-engines: $(VENV)/.installed-dev
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/engine-constraints.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install -q \
		--constraint $(VENV)/engine-constraints.txt $(foreach p,$(ENGINES),'$(p)')
	$(BIN)/python -m pip check
	touch $@

test-engines: $(VENV)/.installed-engines
	EDGE_RUNNER_REQUIRE_ENGINES=1 $(BIN)/python -m pytest -p no:cacheprovider -m engine

# The Clarifai corpus (tests/clarifai_corpus/) with the real clarifai package installed, in a
# venv of its own (the package brings ~55 dependencies that the main venv should not carry):
# the same folders (the corpus, and the OpenAIModelClass and toolkit folders' tests), served
# unchanged, their classes adapted instead of answered by our layer.
# fastmcp (and mcp) for the MCP folder: clarifai 12.5.0 does not pull fastmcp itself.
CLARIFAI      ?= clarifai==12.5.0
CLARIFAI_VENV := .venv-clarifai

$(CLARIFAI_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CLARIFAI_VENV)
	$(CLARIFAI_VENV)/bin/python -m pip install -q -e '.[fastmcp]' '$(CLARIFAI)' pytest pytest-timeout hypothesis
	touch $@

test-clarifai: $(CLARIFAI_VENV)/.installed
	$(CLARIFAI_VENV)/bin/python -m pytest -p no:cacheprovider tests/integration/test_clarifai_corpus.py \
		tests/integration/test_openai_class.py tests/integration/test_toolkits.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/unit

integration: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/integration

# Property-based fuzzing, open-ended: the tests marked `fuzz` (Schemathesis against every HTTP
# route, Hypothesis on the tunnel's codec and sessions) with a random seed, fifty times the cases
# of `make test` and Schemathesis' stateful phase. FUZZ_EXAMPLES: cases per HTTP operation.
FUZZ_EXAMPLES ?= 500

fuzz: $(VENV)/.installed-dev
	EDGE_RUNNER_FUZZ=deep EDGE_RUNNER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/python -m pytest -m fuzz --timeout 0 -rxX --durations 12

bench: $(VENV)/.installed
	$(BIN)/python bench/tunnel.py

proto: $(VENV)/.installed-dev
	$(BIN)/python tools/gen_proto.py

screenshots: $(VENV)/.installed-dev
	$(BIN)/python tools/dashboard_screenshot.py

clean:
	rm -rf $(VENV) $(CLARIFAI_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
