# Both entry points set themselves up: a local .venv with the project and its dev tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The outside tools the interop tests drive (Debian package names).
INTEROP_PACKAGES := tar gzip pigz xz-utils zstd lz4 bzip2 coreutils age
# Azure's blob emulator for tests/remote/test_azure.py (npm). 3.35.0 is the newest release whose
# package still accepts Node.js 18 and 20 (Debian 12's and this machine's); 3.36 asks for 21+.
AZURITE_VERSION := 3.35.0
AZURITE_DIR := .tools/azurite
DEMO_DIR := demo-out

.PHONY: all venv compiler test lint typecheck unit interop-tools azurite demo bench-codecs bench bench-remote bench-random-access clean

all: test

# setup.py builds the optional C extension (src/streaming_tar_compressor/_native.c) into src/.
$(STAMP): pyproject.toml setup.py src/streaming_tar_compressor/_native.c
	@$(MAKE) --no-print-directory compiler
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

venv: $(STAMP)

# The C extension is optional: without a compiler and Python's headers stc runs its Python
# fallback. Under CI=true both suites must run, so install them (Debian) when missing.
compiler:
	@if [ "$$CI" = "true" ]; then \
	  headers=$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	  if ! command -v cc >/dev/null 2>&1 || [ ! -f "$$headers/Python.h" ]; then \
	    echo "installing a C compiler and Python's headers (for the C extension)"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq gcc python3-dev >/dev/null; \
	  fi; \
	fi

# Under CI=true the interop tests must not skip, so install what they need first.
interop-tools:
	@if [ "$$CI" = "true" ]; then \
	  missing=""; \
	  for t in tar gzip pigz xz zstd lz4 bzip2 split sha256sum age age-keygen; do \
	    command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing interop tools (missing:$$missing)"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(INTEROP_PACKAGES) >/dev/null; \
	  fi; \
	fi

# The Azure tests skip without azurite, but under CI=true they must run: there, install Debian's
# nodejs and npm when npm is missing. Elsewhere a machine without npm just skips them.
azurite:
	@if [ -f $(AZURITE_DIR)/.installed-$(AZURITE_VERSION) ]; then exit 0; fi; \
	if ! command -v npm >/dev/null 2>&1 && [ "$$CI" = "true" ]; then \
	  echo "installing nodejs and npm (for azurite)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; \
	fi; \
	if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: the Azure tests will skip (CI=true installs it)"; exit 0; fi; \
	echo "installing azurite $(AZURITE_VERSION) into $(AZURITE_DIR)"; \
	rm -rf $(AZURITE_DIR); \
	if npm install --prefix $(AZURITE_DIR) --no-audit --no-fund --loglevel=error \
	    azurite@$(AZURITE_VERSION) >/dev/null; then \
	  touch $(AZURITE_DIR)/.installed-$(AZURITE_VERSION); \
	elif [ "$$CI" = "true" ]; then exit 1; \
	else echo "could not install azurite: the Azure tests will skip"; fi

lint: $(STAMP)
	$(BIN)/ruff check setup.py src tests benchmarks examples
	$(BIN)/ruff format --check setup.py src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite twice: with the C extension, then with the Python fallback it replaces.
unit: $(STAMP) interop-tools azurite
	$(BIN)/python -m pytest -q
	STC_PURE_PYTHON=1 $(BIN)/python -m pytest -q

test: lint typecheck unit

demo: $(STAMP)
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(BIN)/python examples/make_sample_tree.py $(DEMO_DIR)/sample
	$(BIN)/stc pack $(DEMO_DIR)/sample -o $(DEMO_DIR)/chunks/sample -c zstd --chunk-size 2M
	$(BIN)/stc info $(DEMO_DIR)/chunks/sample
	$(BIN)/stc verify $(DEMO_DIR)/chunks/sample --deep
	$(BIN)/stc unpack $(DEMO_DIR)/chunks/sample -C $(DEMO_DIR)/restored
	diff -r $(DEMO_DIR)/sample $(DEMO_DIR)/restored/$(DEMO_DIR)/sample && echo "demo: restored tree is identical"

# Measures candidate codec libraries on this machine (see benchmarks/codec_libraries.py).
bench-codecs: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/codec_libraries.py

# Times stc against the GNU pipelines (benchmarks/bench.py); `make bench BENCH_ARGS=--quick`.
# Installs the codec CLIs it compares against when missing (Debian), as interop-tools does.
bench: $(STAMP)
	@missing=""; \
	for pair in lbzip2:lbzip2 pigz:pigz zstd:zstd xz:xz-utils lz4:lz4; do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing benchmark tools:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	  || echo "could not install$$missing: bench.py skips their rows"; \
	fi
	@# stc's modules as bytecode, as pip install leaves an installed package: where
	@# PYTHONDONTWRITEBYTECODE=1 is set, every start would compile them again (~50 ms).
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/remote_bench.py $(REMOTE_BENCH_ARGS)

# Pack to and unpack from an S3 API server (moto) over a link of fixed speed (remote_bench.py).
bench-remote: $(STAMP)
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/remote_bench.py $(REMOTE_BENCH_ARGS)

# The member index's goals: one file from a 10 GiB archive, stc list of a million members.
bench-random-access: $(STAMP)
	$(BIN)/python benchmarks/random_access.py $(RANDOM_ACCESS_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .tools .pytest_cache .mypy_cache .ruff_cache .hypothesis build src/streaming_tar_compressor/_native*.so
	find src tests benchmarks -name __pycache__ -prune -exec rm -rf {} +
