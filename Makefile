# gdb-rkvm: `make gdb` (the lab in QEMU, paused, GDB attached) and `make test`.
# Every target depends on `setup`, which installs what is missing and is quick when nothing is.
SHELL := /bin/bash
# The checkout's own virtual environment (make setup): Debian's Python, the one GDB embeds.
PYTHON := $(CURDIR)/build/venv/bin/python
export PYTHON

.PHONY: setup stub kernel module othervisor initramfs lab kernel-kaslr module-kaslr lab-kaslr gdb up down test \
	unit bench docs clean doctor

setup:
	@lab/setup.sh

stub: setup
	@$(MAKE) -s -C stub

kernel: setup
	@lab/build-kernel.sh

module: kernel stub
	@$(MAKE) -s -C module

# A second hypervisor-style module, not ours (no debugger hook), for the tests.
othervisor: kernel
	@$(MAKE) -s -C tests/modules/othervisor

initramfs: module othervisor
	@lab/build-initramfs.sh build/initramfs.cpio.gz build/othervisor/othervisor.ko

lab: initramfs

# The same lab with KASLR on (lab/kaslr.config on top), for the kaslr profile and tests.
KASLR_ENV := KERNEL_FRAGMENT="lab/kernel.config lab/kaslr.config" KERNEL_OUT=$(CURDIR)/build/kernel-kaslr
kernel-kaslr: setup
	@$(KASLR_ENV) lab/build-kernel.sh

module-kaslr: kernel-kaslr stub
	@$(MAKE) -s -C module KDIR=../build/kernel-kaslr OUT=../build/module-kaslr
	@$(MAKE) -s -C tests/modules/othervisor KDIR=../../../build/kernel-kaslr OUT=../../../build/othervisor-kaslr

lab-kaslr: module-kaslr
	@KERNEL_OUT=$(CURDIR)/build/kernel-kaslr MODULE_KO=$(CURDIR)/build/module-kaslr/rkvm.ko \
		lab/build-initramfs.sh build/initramfs-kaslr.cpio.gz build/othervisor-kaslr/othervisor.ko

# GDB_ARGS go to GDB, e.g. make gdb GDB_ARGS="-batch -ex 'rkvm status'"
GDB_ARGS ?=
gdb: lab
	$(PYTHON) -m gdb_rkvm.host.cli gdb $(GDB_ARGS)

up: lab
	$(PYTHON) -m gdb_rkvm.host.cli up

down:
	$(PYTHON) -m gdb_rkvm.host.cli down

doctor: setup
	$(PYTHON) -m gdb_rkvm.host.cli doctor

test: lab lab-kaslr
	$(PYTHON) -m pytest -q tests

unit: setup stub
	$(PYTHON) -m pytest -q tests/unit

bench: lab lab-kaslr
	$(PYTHON) benchmarks/pagewalk.py
	$(PYTHON) benchmarks/hvc_trace.py
	$(PYTHON) benchmarks/attach.py
	$(PYTHON) benchmarks/attach.py --profile lab-kaslr
	$(PYTHON) benchmarks/triage.py

docs: lab
	$(PYTHON) docs/capture.py

clean:
	rm -rf build stub/build
