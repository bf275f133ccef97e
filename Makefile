# One command per task. `make run` and `make test` install what they need first.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install run test test-fast lint format docs bench system-deps frontend clean image-check

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.installed frontend

frontend:
	@if [ -f frontend/package.json ]; then scripts/build-frontend.sh; fi

# On a source checkout the dashboard listens on loopback unless DASHBOARD_HOST says otherwise.
run: install
	DASHBOARD_HOST=$${DASHBOARD_HOST:-127.0.0.1} $(BIN)/comfyui-docker start

system-deps:
	scripts/install-system-deps.sh

# Coverage floor: the in-process share of the suite (code run in subprocesses is not counted).
COV_FLOOR := 80
# Test processes (pytest-xdist): most tests wait on sockets and child processes, so three share two
# cores well (3 min 15 s against 4 min 40 s serially here). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 3

test: install system-deps
	$(BIN)/pytest -n $(TEST_WORKERS) --cov=comfyui_docker --cov-report= --cov-fail-under=$(COV_FLOOR)

test-fast: install
	$(BIN)/pytest -m "not slow and not browser and not nginx" -x -q

lint: install
	$(BIN)/ruff format --check src tests bench scripts/image_check
	$(BIN)/ruff check src tests bench scripts/image_check
	$(BIN)/mypy
	@if ls docker/Dockerfile >/dev/null 2>&1; then $(BIN)/hadolint docker/Dockerfile; fi
	@files=$$(git ls-files '*.sh' .ci/run); if [ -n "$$files" ]; then $(BIN)/shellcheck $$files; fi

format: install
	$(BIN)/ruff format src tests bench scripts/image_check
	$(BIN)/ruff check --fix src tests bench scripts/image_check

# The README's settings table, written from settings.SPECS (tests/test_settings.py checks it).
docs: install
	$(PY) -m comfyui_docker.settings_doc README.md

bench: install system-deps
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Build an image variant from docker/Dockerfile with buildah, boot it and check it (see README,
# "Check the image on this machine"). Not part of `make test`: it builds for many minutes.
#   make image-check COMFYUI_SRC=DIR [VARIANT=minimal|standard|full] [NODES_SRC=DIR]
VARIANT ?= minimal
image-check: install
	PYTHONPATH=scripts COMFYUI_SRC="$(COMFYUI_SRC)" NODES_SRC="$(NODES_SRC)" VARIANT="$(VARIANT)" \
		$(PY) -m image_check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
