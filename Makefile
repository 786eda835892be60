# gdb-rkvm: `make gdb` (the lab in QEMU, paused, GDB attached) and `make test`.
# Every target depends on `setup`, which installs what is missing and is quick when nothing is.
SHELL := /bin/bash
PYTHON ?= python3
export PYTHON

.PHONY: setup stub kernel module initramfs lab gdb up down test unit e2e bench clean doctor

setup:
	@lab/setup.sh

stub: setup
	@$(MAKE) -s -C stub

kernel: setup
	@lab/build-kernel.sh

module: kernel stub
	@$(MAKE) -s -C module

initramfs: module
	@lab/build-initramfs.sh

lab: initramfs

gdb: lab
	$(PYTHON) -m gdb_rkvm.cli gdb

up: lab
	$(PYTHON) -m gdb_rkvm.cli up

down:
	$(PYTHON) -m gdb_rkvm.cli down

doctor: setup
	$(PYTHON) -m gdb_rkvm.cli doctor

test: lab
	$(PYTHON) -m pytest -q tests

unit: setup stub
	$(PYTHON) -m pytest -q tests/unit

bench: lab
	$(PYTHON) benchmarks/run.py

clean:
	rm -rf build stub/build
