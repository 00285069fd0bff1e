PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint install demo bench bench-venv clean

# bin/*: the commands' launchers are copied at install time (pyproject.toml, script-files)
$(STAMP): pyproject.toml $(wildcard bin/*)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	# mpi4py for the MPI tests, built against MPICH (Debian's python3-mpi4py is Open MPI's)
	if command -v mpicc.mpich >/dev/null; then \
	    MPICC=mpicc.mpich $(BIN)/pip install -q --no-binary mpi4py mpi4py || echo "mpi4py not built: MPI tests skip"; fi
	$(BIN)/python -m compileall -q spurcore spurio spurctld spurd spurcli
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check spurcore spurio spurctld spurd spurcli tests benchmarks
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m compileall -q spurcore spurio spurctld spurd spurcli
	$(BIN)/pytest -q tests

demo: $(STAMP)
	bash examples/demo.sh

# The commands are measured as users install them: a regular (not editable) `pip install .`
# into a fresh venv, bytecode compiled by pip. The cluster runs from $(VENV).
BENCH_VENV := build/bench-venv

bench-venv: $(STAMP)
	rm -rf build
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q .
	# flushed: on ext4 without a journal, inodes freed by rm -rf build slow every file creation
	# in their block group while their inode table block stays dirty (benchmarks/slurm/bench.py)
	sync

bench: bench-venv
	$(BIN)/python -m benchmarks.run --bindir $(BENCH_VENV)/bin $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) build *.egg-info

# Not in CI (root; installs Debian's Slurm 22.05 and starts its daemons, see docs/performance.md).
# The Slurm daemons are stopped afterwards unless KEEP_SLURM=1.
.PHONY: bench-slurm conformance-slurm

bench-slurm: bench-venv
	benchmarks/slurm/setup.sh
	$(BIN)/python -m benchmarks.slurm.bench --bindir $(BENCH_VENV)/bin $(BENCH_FLAGS); rc=$$?; \
	    [ -n "$(KEEP_SLURM)" ] || benchmarks/slurm/stop.sh; exit $$rc

conformance-slurm: $(STAMP)
	benchmarks/slurm/setup.sh
	$(BIN)/python -m benchmarks.slurm.conformance $(CONFORMANCE_FLAGS); rc=$$?; \
	    [ -n "$(KEEP_SLURM)" ] || benchmarks/slurm/stop.sh; exit $$rc

# Multi-host scenarios (root; network namespaces, see docs/reliability.md). `make test`
# runs the representative subset as part of tests/ when run as root.
.PHONY: hosts-up hosts-down chaos
HOSTS_DIR ?= /tmp/spur-hosts-cluster
CHAOS_SEEDS ?= 1,2,3
CHAOS_OUT ?= build/chaos

hosts-up: $(STAMP)
	$(BIN)/python -m tests.hosts.up up --dir $(HOSTS_DIR)

hosts-down: $(STAMP)
	$(BIN)/python -m tests.hosts.up down --dir $(HOSTS_DIR)

chaos: $(STAMP)
	SPUR_CHAOS=1 SPUR_CHAOS_SEEDS=$(CHAOS_SEEDS) SPUR_HOSTS_OUT=$(CHAOS_OUT) $(BIN)/pytest -q -s tests/hosts

# A long fuzz of a live 3-replica cluster (root): thousands of random frames and requests
# per kind instead of the suite's 250 (tests/integration/test_fuzz_controller.py).
.PHONY: fuzz
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP)
	SPUR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q --timeout 0 tests/integration/test_fuzz_controller.py
