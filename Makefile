# leakhunt: `make demo` builds and shows it working; `make test` checks everything.
SHELL := /bin/bash
CARGO ?= cargo
RELEASE := target/release
LEAKHUNT := $(RELEASE)/leakhunt
PRELOAD := $(RELEASE)/libleakhunt.so
DEMO_DIR := target/demo

.PHONY: all build demo test deps lint bench growth clean

all: build

# Debian packages the build and the tests need (gcc, g++, valgrind and heaptrack
# as oracles; jemalloc and tcmalloc to be interposed after us). Only installs
# what is missing; skipped when not root. Chromium (for the HTML report's
# headless-browser test) is not installed: it is large, and that test says
# SKIP without it.
deps:
	@missing=""; \
	for p in gcc:gcc g++:g++ make:make valgrind:valgrind heaptrack:heaptrack sqlite3:sqlite3 python3:python3 dwz:dwz strip:binutils; do \
	  cmd=$${p%%:*}; pkg=$${p##*:}; command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	for p in libjemalloc.so.2:libjemalloc2 libtcmalloc_minimal.so.4:libtcmalloc-minimal4; do \
	  lib=$${p%%:*}; pkg=$${p##*:}; [ -e /usr/lib/x86_64-linux-gnu/$$lib ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: missing$$missing (tests that need them will say so and skip)"; fi; \
	fi; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  echo "note: no chromium: the HTML report's browser test skips (apt-get install chromium, ~350 MB, enables it)"

build:
	$(CARGO) build --release --workspace

demo: deps build
	@mkdir -p $(DEMO_DIR)
	gcc -g -O1 -o $(DEMO_DIR)/leaky scripts/demo/leaky.c
	$(LEAKHUNT) run -o $(DEMO_DIR)/leaky.trace -- $(DEMO_DIR)/leaky
	$(LEAKHUNT) report $(DEMO_DIR)/leaky.trace
	$(LEAKHUNT) flamegraph $(DEMO_DIR)/leaky.trace --what leaked -o $(DEMO_DIR)/leaked.svg
	$(LEAKHUNT) flamegraph $(DEMO_DIR)/leaky.trace --what allocated -o $(DEMO_DIR)/allocated.svg
	gcc -g -O1 -o $(DEMO_DIR)/service scripts/demo/service.c
	$(LEAKHUNT) run -o $(DEMO_DIR)/service.trace -- $(DEMO_DIR)/service leaky 3000 500
	$(LEAKHUNT) report $(DEMO_DIR)/service.trace | sed -n '/HEAP GROWTH/,/^$$/p'
	$(LEAKHUNT) timeline $(DEMO_DIR)/service.trace -o $(DEMO_DIR)/curve.svg
	@py=$$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null); \
	if [ -n "$$py" ]; then \
	  $(LEAKHUNT) run -o $(DEMO_DIR)/leaky-py.trace -- $$py scripts/demo/leaky.py && \
	  $(LEAKHUNT) report $(DEMO_DIR)/leaky-py.trace | sed -n '/HEAP GROWTH/,/^$$/p' && \
	  $(LEAKHUNT) flamegraph $(DEMO_DIR)/leaky-py.trace --what peak -o $(DEMO_DIR)/python-peak.svg; \
	else echo "demo: no python3, the Python part is skipped"; fi
	@echo "demo: traces, reports and SVGs are in $(DEMO_DIR)/"

test: deps build
	$(CARGO) test --release --workspace
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check

# BENCH=c or BENCH=python for part of the table; RUNS=N (default 5),
# MEMCHECK=0 and LEAKHUNT_BIN=DIR as scripts/bench/run.py says.
BENCH ?= all
bench: build
	python3 scripts/bench/run.py $(BENCH)

# The growth-verdict corpus (scripts/growth/README.md): RUNS recordings of
# each program under a CPU hog, then the verdict table; fails if any run
# disagrees with scripts/growth/expected.json. Flask goes into a venv of its
# own when the package registry is reachable (else those programs are skipped).
RUNS ?= 10
growth: build
	@[ -x target/growth/venv/bin/python ] || { python3 -m venv target/growth/venv && target/growth/venv/bin/pip install -q flask; } || echo "growth: no Flask venv, the Flask programs are skipped"
	@[ ! -x /usr/bin/python3.11 ] || [ -x target/growth/venv-deb/bin/python ] || { /usr/bin/python3.11 -m venv target/growth/venv-deb && target/growth/venv-deb/bin/pip install -q flask; } || echo "growth: no Flask venv for /usr/bin/python3.11"
	rm -rf target/growth/traces
	python3 scripts/growth/record.py --runs $(RUNS) --load
	python3 scripts/growth/verdicts.py -j 2

clean:
	$(CARGO) clean
