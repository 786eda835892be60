"""Guest physical memory read without the gdbstub (no GDB here: the target layer picks the reader).

- MappedRam: the session's guest RAM file (session.py), mapped read-only. It is reached through
  /proc/PID/fd/N of the session's QEMU, only after the pid identity check (start time and argv), and only
  if the file found there is the one the session created (device and inode recorded in session.json),
  a regular file of ours. Reads are plain slices: 4 KiB in microseconds, and also while the guest runs.
- ProcessMemory: for a QEMU someone else started (`--attach`): `gpa2hva` (QEMU's monitor, through the
  gdbstub) gives the host address of a guest page, /proc/PID/mem reads it, when the kernel permits it
  (same user and ptrace allowed, or root).

Both answer covers(pa, size) and read(pa, size); a read they do not cover goes to the gdbstub.
"""

import mmap
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

from gdb_rkvm.errors import RkvmError

CHUNK = 2 << 20      # ProcessMemory asks gpa2hva once per 2 MiB of guest RAM (blocks are larger and aligned)


@dataclass
class MappedRam:
    base: int
    size: int
    mm: mmap.mmap
    name: str = "RAM file"

    def covers(self, pa: int, size: int) -> bool:
        return self.base <= pa and pa + size <= self.base + self.size

    def read(self, pa: int, size: int) -> bytes:
        off = pa - self.base
        return self.mm[off:off + size]

    def close(self) -> None:
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass

    def describe(self) -> str:
        return f"shared RAM file, {self.size >> 20} MiB at PA {self.base:#x}"


def open_session_ram(sess) -> MappedRam:
    """Map the session's RAM file read-only. RkvmError (one line) says why not."""
    if sess.ram_fd < 0 or not sess.ram_size:
        raise RkvmError("this session keeps guest RAM inside QEMU (no RAM file)")
    problem = sess.identity_problem()
    if problem:
        raise RkvmError(f"the session's QEMU is not there ({problem})")
    path = f"/proc/{int(sess.pid)}/fd/{int(sess.ram_fd)}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RkvmError(f"cannot open guest RAM at {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise RkvmError(f"{path} is not a regular file of yours: not used as guest RAM")
        if sess.ram_id and [st.st_dev, st.st_ino] != list(sess.ram_id):
            raise RkvmError(f"{path} is not the RAM file this session created: not used")
        if st.st_size < sess.ram_size:
            raise RkvmError(f"{path} holds {st.st_size} bytes, the guest has {sess.ram_size}: not used")
        problem = sess.identity_problem()   # the pid could have been reused while we opened it
        if problem:
            raise RkvmError(f"the session's QEMU is not there ({problem})")
        try:
            mm = mmap.mmap(fd, sess.ram_size, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError) as e:
            raise RkvmError(f"cannot map guest RAM ({e})") from None
    finally:
        os.close(fd)
    return MappedRam(sess.ram_base, sess.ram_size, mm)


_GPA2HVA = re.compile(r"Host virtual address for (0x[0-9a-fA-F]{1,16}) \([^)\n]{0,200}\) is (0x[0-9a-fA-F]{1,16})")


def parse_gpa2hva(text: str) -> int | None:
    """The host address in the answer of QEMU's `gpa2hva ADDR`, or None (no RAM there, other text)."""
    m = _GPA2HVA.search(text)
    return int(m.group(2), 16) if m else None


class ProcessMemory:
    """Guest RAM read through /proc/PID/mem of a QEMU we did not start, host addresses from gpa2hva."""

    name = "QEMU's memory (/proc/PID/mem)"

    def __init__(self, pid: int, gpa2hva: Callable[[int], str]):
        self.pid, self.gpa2hva, self.chunks = pid, gpa2hva, {}
        try:
            self.fd = os.open(f"/proc/{int(pid)}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise RkvmError(f"cannot read /proc/{pid}/mem: {e.strerror}") from None

    def _hva(self, chunk: int) -> int | None:
        if chunk not in self.chunks:
            try:
                self.chunks[chunk] = parse_gpa2hva(self.gpa2hva(chunk * CHUNK))
            except RkvmError:
                self.chunks[chunk] = None
            if len(self.chunks) > 65536:   # 128 GiB of guest RAM asked about: keep the map bounded
                self.chunks.clear()
        return self.chunks.get(chunk)

    def covers(self, pa: int, size: int) -> bool:
        if size <= 0 or pa < 0:
            return False
        return all(self._hva(c) is not None for c in range(pa // CHUNK, (pa + size - 1) // CHUNK + 1))

    def read(self, pa: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            chunk, off = divmod(pa, CHUNK)
            n = min(size, CHUNK - off)
            hva = self._hva(chunk)
            if hva is None:
                raise RkvmError(f"PA {pa:#x} is not guest RAM QEMU can map")
            try:
                data = os.pread(self.fd, n, hva + off)
            except OSError as e:
                raise RkvmError(f"cannot read QEMU's memory for PA {pa:#x}: {e.strerror}") from None
            if len(data) != n:
                raise RkvmError(f"short read of QEMU's memory for PA {pa:#x}")
            out += data
            pa, size = pa + n, size - n
        return bytes(out)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass

    def describe(self) -> str:
        return f"QEMU pid {self.pid}'s memory (/proc/PID/mem, gpa2hva)"
