# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

# The whole job on the embedded MNIST digits: train, profile, search, validate, export, plot, report.
# A second `make demo` continues (or reuses) runs/demo phase by phase.
demo: $(STAMP)
	$(PY) search.py space info --config configs/demo.yaml --samples 0
	$(PY) search.py run --config configs/demo.yaml $$(test -d runs/demo && echo --resume)

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
