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

.PHONY: demo serve test lint bench bench-10m evaluate venv clean build tf-check drills \
	provider-schema browser mutation

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

# The provider schemas (hashicorp/google 6.50.0, time, archive) from their pinned PyPI packages
# (cdktf-cdktf-provider-*, sha256-checked), cached in .provider-schema/ (ignored): what
# tests/deploy/test_provider_schema.py checks terraform/ against, offline.
provider-schema: $(STAMP)
	$(PY) scripts/provider_schema.py

# A scheduled refresh, then serving: functions-framework runs `prepare` over the bundled sample
# log (samples/answers.csv.gz, DuckDB running the BigQuery SQL) into build/local/model_dir and
# is called as Cloud Scheduler calls it; then `predict` serves that model and answers samples.
demo: $(STAMP)
	$(PY) scripts/local_stack.py demo

# `predict` on http://127.0.0.1:$(PORT) until Ctrl-C, request logs on the terminal; a port
# already in use is an error (README has the curl lines). `make serve PORT=8081`.
PORT ?= 8080
serve: $(STAMP)
	$(PY) scripts/local_stack.py serve --port $(PORT)

# Headless Chromium for the model report's browser test (tests/tools/test_report_browser.py):
# Debian's chromium package, driven by Playwright (requirements-dev.txt) with
# executable_path=/usr/bin/chromium, so no browser is downloaded. Installed with apt-get as
# root (CI and the dev machines run as root); elsewhere it says why the test will skip.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the report's browser test (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null; \
	else echo "chromium is not installed and cannot be here (needs root and apt-get):" \
	  "tests/tools/test_report_browser.py will skip"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint tf-check provider-schema browser
	$(PY) -m pytest -q

# Calibration/EAP against PyPI mirt, predict in-process, over HTTP (needs `wrk`:
# apt-get install wrk) and cold start, then prepare end to end (ASSISTments 2009 if present,
# 10M simulated answers), then the extreme-sparsity fit (40k items, Zipf exposure), plain and
# with each learning-aware option set; last the offline/online study of ML Test Score model 2
# (~1 minute). Figures and how to read them: benchmarks/README.md.
bench: $(STAMP)
	PYTHONPATH=shared $(PY) benchmarks/bench_fit.py
	PYTHONPATH=shared $(PY) benchmarks/bench_predict.py
	PYTHONPATH=shared $(PY) benchmarks/bench_prepare.py
	PYTHONPATH=shared $(PY) benchmarks/bench_sparse.py --skip-no-priors
	PYTHONPATH=shared $(PY) benchmarks/bench_predict_learning.py
	PYTHONPATH=shared $(PY) benchmarks/bench_diagnostics.py
	PYTHONPATH=shared $(PY) benchmarks/bench_learning_sparse.py
	PYTHONPATH=shared $(PY) benchmarks/bench_online_study.py

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

# The mutation check of docs/ml-test-score.md: the audit's 18 small changes to the guarded code,
# each applied to a temporary copy of the tree, and the tests the document names for that point
# run on it (caught = they fail). Never touches the working tree; ~5 minutes; summary in
# build/mutation/summary.md; exit 1 when a mutant survived.
mutation: $(STAMP)
	$(PY) scripts/mutation.py

# Online evaluation on the public learning logs (../shared/datasets; each skipped if absent):
# the plain 2PL, every option set and auto, one table per log (README "Online evaluation").
DATASETS := ../shared/datasets
EVAL_LOGS := assistments2009_lpp assistments2015_lpp spanish_lpp
evaluate: $(STAMP)
	@for d in $(EVAL_LOGS); do \
	  if [ -f $(DATASETS)/$$d/$${d}_train.csv.gz ]; then \
	    echo "== $$d"; \
	    PYTHONPATH=shared $(PY) -m irt evaluate $(DATASETS)/$$d/$${d}_train.csv.gz \
	      $(DATASETS)/$$d/$${d}_test.csv.gz --student-column user_id --order-column seq \
	      --skill-column skill_id --table -q || exit 1; \
	  else echo "skipped: $(DATASETS)/$$d not found"; fi; \
	done

clean:
	rm -rf $(VENV) $(TOOLS) build .pytest_cache .ruff_cache .hypothesis .provider-schema
