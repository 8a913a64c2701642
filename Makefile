# The README's two commands: `make run` (build everything and serve the app) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PC := $(VENV)/bin/proactive-care
DATA := data
PATIENTS ?= 50000
SEED ?= 42
PROFILE ?= leicester
# Records cover 2022-2025: train on 2024 outcomes, evaluate on 2025, score for 2026.
TRAIN_DATE ?= 2024-01-01
SCORE_DATE ?= 2026-01-01
DATABASE_URL ?= sqlite:///$(abspath $(DATA))/proactive_care.db
export PROACTIVE_CARE_DATABASE_URL ?= $(DATABASE_URL)
# The app's default is production (no demo users); `make run` is the demo, so it says so.
export PROACTIVE_CARE_MODE ?= demo

.PHONY: run demo install test browser serve clean

run: demo serve

install: $(VENV)/.installed

# Every package at the version and sha256 hashes in requirements.lock (regenerate it with the
# pip-compile command in docs/data.md after changing pyproject.toml), then this project without
# resolving anything else.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(DATA)/records/patients.parquet: $(VENV)/.installed
	$(PC) cohort --patients $(PATIENTS) --seed $(SEED) --profile $(PROFILE) --out $(DATA)/records

$(DATA)/model/model.skops: $(DATA)/records/patients.parquet
	$(PC) train --records $(DATA)/records --index-date $(TRAIN_DATE) --out $(DATA)/model
	$(PC) evaluate --records $(DATA)/records --model $(DATA)/model

$(DATA)/scores.parquet: $(DATA)/model/model.skops
	$(PC) score --records $(DATA)/records --model $(DATA)/model --index-date $(SCORE_DATE) --out $@

$(DATA)/.loaded: $(DATA)/scores.parquet
	$(PC) db upgrade
	$(PC) load --records $(DATA)/records --scores $(DATA)/scores.parquet --model $(DATA)/model
	touch $@

demo: $(DATA)/.loaded

serve: demo
	$(PC) serve

# Browser tests drive Debian's Chromium; install it from Debian's packages if missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

test: install browser
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(DATA)
