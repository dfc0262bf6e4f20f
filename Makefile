# Two commands set everything up and run it on a fresh machine (Python 3.11+, make):
#   make demo   - run the job locally on embedded defaults (no cloud account)
#   make test   - lint + Terraform checks + the whole test suite
#   make build  - vendor each function into build/functions/<name>/ (what Terraform deploys)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Offline Terraform tools (checkov, Terraform 1.0.3 for fmt) in their own venv: checkov pins its
# own `hcl2` module, which would clash with python-hcl2 in .venv (terraform/requirements-tools.txt).
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: demo serve test lint bench bench-10m evaluate venv clean build tf-check drills

$(STAMP): requirements-dev.txt functions/prepare/requirements.txt functions/predict/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

$(TOOLS_STAMP): terraform/requirements-tools.txt $(STAMP)
	$(PYTHON) -m venv --clear --without-pip $(TOOLS)
	$(VENV)/bin/uv pip install --quiet --python $(TOOLS)/bin/python -r terraform/requirements-tools.txt
	touch $(TOOLS_STAMP)

# build/functions/<name>/ = main.py + requirements.txt + a copy of shared/irt, nothing else;
# terraform zips these folders (README, Operations).
build: $(STAMP)
	$(PY) scripts/build_functions.py

# terraform fmt (1.0.3) and checkov, both offline; `validate` needs providers, see README.
tf-check: $(TOOLS_STAMP)
	$(TOOLS)/bin/terraform fmt -check -recursive -diff terraform
	BC_SKIP_MAPPING=TRUE $(TOOLS)/bin/checkov -d terraform --framework terraform --skip-download --quiet --compact

# A scheduled refresh, then serving: functions-framework runs `prepare` over the bundled sample
# log (samples/answers.csv.gz, DuckDB running the BigQuery SQL) into build/local/model_dir and
# is called as Cloud Scheduler calls it; then `predict` serves that model and answers samples.
demo: $(STAMP)
	$(PY) scripts/local_stack.py demo

# `predict` on http://127.0.0.1:8080 until Ctrl-C (README has the curl lines).
serve: $(STAMP)
	$(PY) scripts/local_stack.py serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint tf-check
	$(PY) -m pytest -q

# Calibration/EAP against PyPI mirt, predict in-process, over HTTP (needs `wrk`:
# apt-get install wrk) and cold start, then prepare end to end (ASSISTments 2009 if present,
# 10M simulated answers), then the extreme-sparsity fit (40k items, Zipf exposure), plain and
# with each learning-aware option set. Figures and how to read them: benchmarks/README.md.
bench: $(STAMP)
	PYTHONPATH=shared $(PY) benchmarks/bench_fit.py
	PYTHONPATH=shared $(PY) benchmarks/bench_predict.py
	PYTHONPATH=shared $(PY) benchmarks/bench_prepare.py
	PYTHONPATH=shared $(PY) benchmarks/bench_sparse.py --skip-no-priors
	PYTHONPATH=shared $(PY) benchmarks/bench_learning_sparse.py

# The learning-aware fit (skills,pfa) at 10M simulated answers with the default cap: time and
# peak memory of fresh processes (~5 minutes; not in `make bench`).
bench-10m: $(STAMP)
	PYTHONPATH=shared $(PY) benchmarks/bench_learning_10m.py

# Production-readiness drills at release size (docs/ml-test-score.md): `pytest -m drills` with
# IRT_DRILLS=full (10,000 hostile requests + schemathesis, faults, logs, caps, secrets), then
# 2 x 60 s of load at concurrency 16 under wrk with model refreshes. ~12 minutes; figures in
# build/drills/summary.md. `make test` runs the same drills at CI size.
drills: $(STAMP)
	PYTHONPATH=shared $(PY) scripts/drills.py

# Online evaluation on the ASSISTments 2009 log (../shared/datasets; skipped if absent): the
# plain 2PL and every learning-aware option set (irt.engine.learning), against the published figures.
ASSIST := ../shared/datasets/assistments2009_lpp
evaluate: $(STAMP)
	@if [ -f $(ASSIST)/assistments2009_lpp_train.csv.gz ]; then \
	  PYTHONPATH=shared $(PY) -m irt evaluate $(ASSIST)/assistments2009_lpp_train.csv.gz \
	    $(ASSIST)/assistments2009_lpp_test.csv.gz --student-column user_id --order-column seq \
	    --skill-column skill_id --table; \
	else echo "skipped: $(ASSIST) not found"; fi

clean:
	rm -rf $(VENV) $(TOOLS) build .pytest_cache .ruff_cache .hypothesis
