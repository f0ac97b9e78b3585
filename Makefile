# Hengxin: the two entry points are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600

# Debian packages the platform needs at run time.  Later parts extend this list.
DEB_RUNTIME := python3-venv python3-dev build-essential libldap2-dev libsasl2-dev restic openssl \
	fonts-arphic-gbsn00lp
# Debian packages the test suite needs on top: real servers and independent verifiers.
DEB_TEST := postgresql slapd ldap-utils softhsm2 poppler-utils qpdf libnss3-tools chrony faketime \
	openssh-server openssh-client golang-cfssl ansible nginx acl logrotate python3-psycopg2 wrk

.PHONY: run test deps deps-test venv install lint bench fuzz soak

run: deps install
	@$(VENV)/bin/hengxin --config var/hengxin.toml init --if-needed
	@$(VENV)/bin/hengxin --config var/hengxin.toml serve

test: deps deps-test install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Preseed so that hosts running systemd get no system slapd or PostgreSQL cluster.
define PRESEED
	echo 'slapd slapd/no_configuration boolean true' | $(SUDO) debconf-set-selections
	$(SUDO) mkdir -p /etc/postgresql-common
	[ -f /etc/postgresql-common/createcluster.conf ] && grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf \
		|| echo 'create_main_cluster = false' | $(SUDO) tee -a /etc/postgresql-common/createcluster.conf >/dev/null
endef

.deps-stamp-runtime: Makefile
	@$(PRESEED)
	$(APT) update
	$(APT) install $(DEB_RUNTIME)
	@touch $@

.deps-stamp-test: Makefile .deps-stamp-runtime
	@$(PRESEED)
	$(APT) install $(DEB_TEST)
	@touch $@

deps: .deps-stamp-runtime
deps-test: .deps-stamp-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy core ca directory timestamp signing backup dr api

# Benchmarks against peers in the same run (docs/performance.md); the machine should be otherwise idle.
bench: deps deps-test install
	$(VENV)/bin/pip install -q -e '.[test,bench]'
	$(PY) bench/run_all.py $(BENCH_ARGS)

# Long-running robustness checks, outside `make test` (see fuzz/README.md and docs/security.md).
fuzz: install
	$(VENV)/bin/pip install -q 'atheris>=2.3' || echo "atheris unavailable: harnesses fall back to --engine hypothesis"
	HENGXIN_SCHEMA_METHODS=all HENGXIN_SCHEMA_EXAMPLES=50 $(PY) -m pytest -q -p no:cacheprovider tests/reliability/test_api_schema.py
	$(PY) fuzz/fuzz_csr.py --runs 1000000 --seconds 600
	$(PY) fuzz/fuzz_ocsp.py --runs 1000000 --seconds 600
	$(PY) fuzz/fuzz_tsa.py --runs 1000000 --seconds 600

soak: install
	HENGXIN_SOAK_SECONDS=$${HENGXIN_SOAK_SECONDS:-600} $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_soak.py
