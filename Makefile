# s3turbo: `make help` lists the targets. Everything installs into this folder (.venv, .tools,
# target) from the package registries; nothing is needed beforehand but Rust and Python 3.10+.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
S3S_FS := .tools/s3s-fs/bin/s3s-fs
export VIRTUAL_ENV := $(abspath $(VENV))

.DEFAULT_GOAL := help
.PHONY: help demo bench test lint fmt develop develop-release

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

demo: $(VENV)/.installed $(S3S_FS) develop-release  ## 1 GiB up and down through a local s3s-fs: s3turbo next to boto3
	$(VPY) benchmarks/demo.py

bench: $(VENV)/.installed $(S3S_FS) develop-release  ## boto3 vs s3turbo: rates, CPU/GiB, peak RSS (benchmarks/bench.py)
	$(VPY) benchmarks/bench.py $(BENCH_ARGS)

test: $(VENV)/.installed $(S3S_FS) develop  ## install everything, then cargo test and pytest
	cargo test
	$(VPY) -m pytest -q

lint:  $(VENV)/.installed $(S3S_FS) develop  ## rustfmt, clippy, ruff, mypy (and the engine's stubs against it)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo fmt --check --manifest-path servers/s3s-fs/Cargo.toml
	cargo clippy --release --locked --manifest-path servers/s3s-fs/Cargo.toml -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks
	$(VPY) -m mypy
	$(VPY) -m mypy.stubtest s3turbo._core

fmt: $(VENV)/.installed  ## format Rust and Python
	cargo fmt
	cargo fmt --manifest-path servers/s3s-fs/Cargo.toml
	$(VENV)/bin/ruff format python tests benchmarks

develop: $(VENV)/.installed  ## debug build of the extension into .venv
	$(VENV)/bin/maturin develop --quiet

develop-release: $(VENV)/.installed  ## release build of the extension into .venv
	$(VENV)/bin/maturin develop --release --quiet

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet "maturin>=1.7,<2" boto3 "moto[server]>=5" "pytest>=8" hypothesis ruff mypy gevent
	touch $@

# The S3 server the tests, the demo and the benchmarks run against (DESIGN.md section 5): s3s-fs
# 0.14.1 (the last version that builds with our rustc) behind our own small main, which turns
# Nagle's algorithm off and closes connections gracefully (servers/s3s-fs/src/main.rs says why).
$(S3S_FS): servers/s3s-fs/Cargo.toml servers/s3s-fs/Cargo.lock $(wildcard servers/s3s-fs/src/*.rs)
	cargo install --path servers/s3s-fs --locked --force --root .tools/s3s-fs
