# make lab   — set everything up, then open JupyterLab on the course (notebooks/ and exercises/)
# make test  — set everything up, then run the unit tests and every notebook under nbval
# make finetune — fine-tune the full model on the stamps (chapter 06) into runs/finetune
# make claims — run every chapter under several seeds and thread counts: which findings hold
# make book  — the course as a website in _build/html; make book-check opens it in Chromium
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmcourse-installed
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
         --nbval-cell-timeout=900 -p no:cacheprovider
# Both cores: one pytest worker per core, each test file (or notebook) kept on one worker,
# one math-library thread per worker. With more threads than cores (OMP_NUM_THREADS=2 and
# two workers), idle threads sleep instead of spinning, or each worker slows the other
# down several times over; the sums are the same either way.
JOBS ?= 2
PYTEST := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} \
          $(BIN)/python -m pytest -n $(JOBS) --dist loadscope

.PHONY: setup lab test unit notebooks exercises grade finetune claims book book-check clean

setup: $(STAMP)
	@$(BIN)/python -m mmcourse install-data

# PIP_ARGS passes options to that pip install, e.g. the CPU-only PyTorch build:
# make lab PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_ARGS) -e ".[dev]"
	$(BIN)/python -m ipykernel install --user --name mmcourse \
	    --display-name "Python (mmcourse)" > /dev/null
	touch $@

# The course's own notebooks are trusted, so their saved widgets render before anything runs.
LAB_PORT ?= 8888
lab: setup
	$(BIN)/jupyter trust notebooks/[0-9]*.ipynb exercises/[0-9]*.ipynb
	@echo "JupyterLab on http://localhost:$(LAB_PORT)/lab/tree/notebooks —" \
	      "chapters in notebooks/, exercises in exercises/ (use the URL with the token below)"
	$(BIN)/jupyter lab --notebook-dir=. --port=$(LAB_PORT) $(LAB_ARGS)

unit: setup
	$(PYTEST) tests -q

# One pytest session for the unit tests and the notebooks, so that both workers stay busy
# to the end (the solved exercises, many and short, come last).
test: setup
	MMCOURSE_FAST=$${MMCOURSE_FAST:-1} $(PYTEST) -q tests notebooks solutions $(NBVAL)

# Regenerate every chapter notebook from its jupytext source and run it in full mode.
# A cell may run for an hour (the longest, chapter 03's two language runs, takes about
# 35 min on 2 CPU cores), so a stalled kernel connection cannot block the loop forever.
notebooks: setup
	for src in notebooks/[0-9]*.py; do \
	    $(BIN)/jupytext --to ipynb --update "$$src" && \
	    MMCOURSE_FAST=$${MMCOURSE_FAST:-0} $(BIN)/jupyter nbconvert --to notebook --execute \
	        --inplace --ExecutePreprocessor.timeout=3600 "$${src%.py}.ipynb" || exit 1; \
	done

# Execute every solved master (solutions/*.py → .ipynb), then regenerate exercises/ and
# grading/autograders/ from them with otter assign.
exercises: setup
	for src in solutions/[0-9]*.py; do \
	    $(BIN)/jupytext --to ipynb --update "$$src" && \
	    $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	        --ExecutePreprocessor.timeout=600 "$${src%.py}.ipynb" || exit 1; \
	done
	$(BIN)/python -m mmcourse exercises

# Grade a folder of submissions: make grade SUBMISSIONS=path/to/folder
grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder"; exit 2; }
	$(BIN)/python -m mmcourse grade "$(SUBMISSIONS)"

# Fine-tune the full model (data → train → evaluate) into FINETUNE_OUT: metrics.json,
# model.pt, learning_curve.png, confusion.png. MMCOURSE_FAST=1 for a quick run; options of
# `python -m mmcourse finetune` go in FINETUNE_ARGS (e.g. "--strategy lora --fold 2").
FINETUNE_OUT ?= runs/finetune
finetune: setup
	$(BIN)/python -m mmcourse finetune --progress --out "$(FINETUNE_OUT)" $(FINETUNE_ARGS)

# Which findings hold: every chapter in fast mode under seeds 0, 1 and 2 at one thread and
# seed 0 at two threads; where each assert cell held goes into benchmarks/claims.tsv.
# CLAIMS=notebooks/04_fusion.ipynb checks one chapter.
CLAIMS ?= notebooks/[0-9]*.ipynb
claims: setup
	$(BIN)/python -m mmcourse claims $(CLAIMS) --seeds 0 1 2 --threads 1 2 \
	    --table benchmarks/claims.tsv

# The course as a website in _build/html (book/conf.py): the committed notebooks as they
# are, never executed; any warning or broken link fails the build. `make book-check` opens
# every page in headless Chromium (tests/test_book.py; needs Debian's chromium).
BOOK_STAMP := $(VENV)/.mmcourse-book-installed
$(BOOK_STAMP): book/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r book/requirements.txt
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

book: $(BOOK_STAMP) node_modules/.package-lock.json
	rm -rf _build
	$(BIN)/python -m sphinx -W --keep-going -n -q -b html -c book -d _build/doctrees . _build/html
	@echo "The course's website: _build/html/index.html"

book-check: $(STAMP) $(BOOK_STAMP) node_modules/.package-lock.json
	$(BIN)/python -m pytest -m book tests/test_book.py -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache _build node_modules
