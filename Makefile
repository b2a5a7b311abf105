# pzvo: `make run` serves the demo on http://127.0.0.1:8000; `make test` runs the test suite.
# Both install what is missing first (Debian packages as root, the .venv virtualenv).
VENV    := .venv
PY      := $(VENV)/bin/python
PZVO    := $(VENV)/bin/pzvo
BIND    ?= 127.0.0.1:8000
BENCH_ROWS ?= 1000000

.PHONY: deps system venv db demo run serve test bench corpus corpus-diff loadtest soak stop clean

deps: system venv

system:
	@bash scripts/install-system-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,rail,bpz,hats]'
	touch $@

db: deps
	$(PZVO) db start
	$(PZVO) db migrate

demo: db
	$(PZVO) demo

# The demo is open to anonymous readers (TOPCAT works at once); set PZVO_PUBLIC_READ=false to
# require tokens (`pzvo user add NAME`).
# `pzvo serve` also starts the async TAP workers (`pzvo worker`, PZVO_UWS_WORKERS of them, 2 by
# default) and restarts one that dies; Ctrl-C stops them all.
run: demo
	PZVO_PUBLIC_READ=$${PZVO_PUBLIC_READ:-true} $(PZVO) serve --bind $(BIND)

test: deps
	$(PZVO) db start
	$(VENV)/bin/pytest -q -ra

# 20 clients mixing sync, async and uploads for 60 s against the service `make run` started
# (in another terminal); see docs/performance.md.  Not part of `make test`.
loadtest: deps
	$(PY) benchmarks/loadtest.py --url http://$(BIND)/tap --clients 20 --duration 60

# 20 clients for 60 s, half valid and half hostile, plus slow connections, against a service it
# starts itself (nginx + gunicorn + 2 async workers on 127.0.0.1:8768): no 5xx, no job lost,
# memory bounded, connections back to steady state (docs/security.md, docs/performance.md).
soak: demo
	$(PY) benchmarks/soak.py --clients 20 --duration 60

bench: demo
	$(PZVO) bench-load --rows $(BENCH_ROWS)
	$(PY) benchmarks/run_all.py

corpus: demo
	$(PZVO) bench-load --rows $(BENCH_ROWS)
	$(PY) benchmarks/run_corpus.py

# The corpus's exec-tier queries on pzvo and on another TAP service with the same benchmark
# table, compared value by value (docs/adql.md, "Differences from another TAP service").  Not part
# of `make test`.  OTHER: the other service's TAP URL (default: pzvo itself, a self-check);
# OTHER_TABLE: the table's name there (the DaCHS peer: pzpeer.photoz).
OTHER ?=
OTHER_TABLE ?= pzpeer.photoz
corpus-diff: demo
	$(PZVO) bench-load --rows $(BENCH_ROWS)
	$(PY) benchmarks/corpus_diff.py --skip-heavy --out benchmarks/results/corpus_diff.json \
		$(if $(OTHER),--other $(OTHER) --other-table $(OTHER_TABLE))

stop:
	$(PZVO) db stop

clean:
	-$(PZVO) db stop
	rm -rf var $(VENV)
