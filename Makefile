# Two commands set everything up and run it on a fresh machine (Python 3.11+, make):
#   make demo   - run the job locally on embedded defaults (no cloud account)
#   make test   - lint + the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo serve test lint bench evaluate venv clean

$(STAMP): requirements-dev.txt functions/prepare/requirements.txt functions/predict/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Calibrate a model from a synthetic log into build/local/model_dir, serve `predict` with the
# real functions-framework on 127.0.0.1, send sample requests, print the answers.
demo: $(STAMP)
	$(PY) scripts/local_stack.py demo

# `predict` on http://127.0.0.1:8080 until Ctrl-C (README has the curl lines).
serve: $(STAMP)
	$(PY) scripts/local_stack.py serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

# Calibration/EAP against PyPI mirt, then predict in-process, over HTTP (needs `wrk`:
# apt-get install wrk) and cold start. Figures and how to read them: benchmarks/README.md.
bench: $(STAMP)
	PYTHONPATH=shared $(PY) benchmarks/bench_fit.py
	PYTHONPATH=shared $(PY) benchmarks/bench_predict.py

# Online evaluation on the ASSISTments 2009 log (../shared/datasets; skipped if absent).
ASSIST := ../shared/datasets/assistments2009_lpp
evaluate: $(STAMP)
	@if [ -f $(ASSIST)/assistments2009_lpp_train.csv.gz ]; then \
	  PYTHONPATH=shared $(PY) -m irt evaluate $(ASSIST)/assistments2009_lpp_train.csv.gz \
	    $(ASSIST)/assistments2009_lpp_test.csv.gz --student-column user_id --order-column seq; \
	else echo "skipped: $(ASSIST) not found"; fi

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
