"""QEMU machine profiles: `qemu_profiles/NAME.toml`, checked against a small schema.

A profile has `[vars]` (strings, overridable with --set NAME=VALUE, expanded as ${name} in every
other string, with ${build} and ${repo} predefined), `[machine]` (what QEMU runs) and `[gdb]`
(where the symbols are). Errors name the file, the line and the key.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.paths import REPO, build_dir, profiles_dir

MACHINE_KEYS = {
    "machine": (str, True), "cpu": (str, True), "kernel": (str, True), "smp": (str, False),
    "memory": (str, False), "initrd": (str, False), "append": (str, False),
    "extra_args": (list, False), "qemu": (str, False),
}
GDB_KEYS = {"vmlinux": (str, False), "scripts": (str, False), "module_dirs": (list, False)}
TOP_KEYS = {"description": str, "vars": dict, "machine": dict, "gdb": dict}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# QEMU options whose value is a comma-separated list of key=value (QemuOpts): a ${var} expanded inside
# one has its commas doubled, so `--set rootfs=/x,readonly=on` stays a file name.
COMMA_OPTIONS = {"-drive", "-chardev", "-object", "-device", "-netdev", "-nic", "-net", "-blockdev", "-fsdev",
                 "-virtfs", "-global", "-numa", "-audiodev", "-machine", "-M", "-smp", "-accel", "-add-fd",
                 "-fw_cfg", "-tpmdev", "-mon", "-plugin", "-boot", "-rtc", "-icount", "-overcommit", "-msg",
                 "-name", "-semihosting-config", "-sandbox", "-iscsi", "-trace"}
# The session owns the gdbstub, the monitor(s), the serial console and QEMU's life: a profile may not add
# its own (a gdbstub or monitor is a shell for whoever reaches it).
REFUSED_OPTIONS = {
    "-s": "opens a gdbstub on every interface (tcp::1234)", "-gdb": "adds a gdbstub (the session has its own)",
    "-monitor": "adds a QEMU monitor (use GDB's 'monitor')",
    "-qmp": "adds a QMP monitor", "-qmp-pretty": "adds a QMP monitor", "-mon": "adds a QEMU monitor",
    "-serial": "the session owns the serial console", "-nographic": "puts a monitor and the console on stdio",
    "-daemonize": "the session must keep QEMU's pid", "-vnc": "opens a VNC server",
    "-spice": "opens a SPICE server", "-incoming": "listens for a migration", "-pidfile": "the session records the pid",
}
# Option values that make QEMU listen on, or connect to, the network.
_NETWORK_VALUE = re.compile(r"(^|[,=])(tcp|telnet|udp|websocket|vnc|unix)(:|$|,)|(^|,)(host|port|hostfwd|guestfwd|"
                            r"listen|connect|mcast|localaddr)=", re.IGNORECASE)


def qemu_escape(value: str) -> str:
    """A value placed in a QEMU comma-separated option: commas doubled (QEMU reads ',,' as one ',')."""
    return value.replace(",", ",,")


class ProfileError(RkvmError):
    pass


# QEMU's size suffixes (qemu_strtosz): binary multiples; -m takes a bare number as MiB.
_SIZE_UNITS = {"": 1 << 20, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50,
               "e": 1 << 60}
_SIZE = re.compile(r"(?:size=)?(\d+(?:\.\d+)?)\s*([bkmgtpe]?)", re.IGNORECASE)


def memory_bytes(text: str) -> int:
    """Bytes of guest RAM for a QEMU `-m` value: '2048' (MiB), '2G', '512M', '1.5G', 'size=2G,maxmem=4G'.
    ProfileError if it is not one (QEMU would refuse it too)."""
    first = str(text).strip().split(",", 1)[0]
    m = _SIZE.fullmatch(first)
    if not m:
        raise ProfileError(f"memory '{escape(str(text))}' is not a QEMU size (a number of MiB, or with a "
                           "suffix: 512M, 2G)")
    size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if size <= 0:
        raise ProfileError(f"memory '{escape(str(text))}' is no memory at all")
    return size


def max_smp() -> int:
    """vCPUs rkvm.ko's EL2 stub has per-CPU slots for (RKVM_MAX_CPUS in stub/rkvm_abi.h)."""
    from gdb_rkvm.model.stub_abi import value
    return value("RKVM_MAX_CPUS")


def check_smp(value) -> int:
    """The vCPU count of `--smp N` or a profile's smp ('N' or 'N,maxcpus=M,...': the largest counts),
    refused (ProfileError) unless 1 <= N <= RKVM_MAX_CPUS: the stub's per-CPU slots and stacks hold
    that many, and rkvm.ko refuses to load on more."""
    text = str(value).strip()
    fields = text.split(",")
    counts = []
    if re.fullmatch(r"(?:cpus=)?-?\d+", fields[0]):
        counts.append(int(fields[0].removeprefix("cpus=")))
    for f in fields[1:]:
        k, _, v = f.partition("=")
        if k == "maxcpus" and re.fullmatch(r"-?\d+", v):
            counts.append(int(v))
    if not counts:
        raise ProfileError(f"smp '{escape(text)}': expected a number of vCPUs first (e.g. 2)")
    n = max(counts)
    if min(counts) < 1:
        raise ProfileError(f"smp {escape(text)}: a guest needs at least 1 vCPU")
    if n > max_smp():
        raise ProfileError(f"smp {escape(text)}: rkvm.ko's EL2 stub has per-CPU slots for {max_smp()} vCPUs "
                           f"(RKVM_MAX_CPUS in stub/rkvm_abi.h); it refuses to load on more")
    return n


@dataclass
class Profile:
    """A loaded profile with every ${var} expanded."""

    name: str
    path: Path
    description: str
    vars: dict
    machine: dict
    gdb: dict = field(default_factory=dict)

    def qemu_args(self, append_extra: str = "", smp: int | None = None) -> list[str]:
        """QEMU's argv for this machine, without the session's own plumbing (-S, -gdb, serial)."""
        m = self.machine
        smp_arg = str(smp if smp is not None else m.get("smp", "1"))
        check_smp(smp_arg)
        args = [m.get("qemu", "qemu-system-aarch64"), "-M", m["machine"], "-cpu", m["cpu"]]
        args += ["-smp", smp_arg, "-m", m.get("memory", "1024")]
        args += ["-kernel", m["kernel"]]
        if m.get("initrd"):
            args += ["-initrd", m["initrd"]]
        append = " ".join(x for x in (m.get("append", ""), append_extra) if x)
        if append:
            args += ["-append", append]
        args += list(m.get("extra_args", []))
        return args

    def kernel_cmdline(self, append_extra: str = "") -> str:
        return " ".join(x for x in (self.machine.get("append", ""), append_extra) if x)


def available() -> list[str]:
    """Names of the profiles in qemu_profiles/."""
    return sorted(p.stem for p in profiles_dir().glob("*.toml"))


def _line_of(text: str, section: str | None, key: str) -> int:
    """1-based line where `key` is set (inside [section] if given), or 0 if not found."""
    current = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            current = s.strip("[]").strip()
            if section is None and current == key:
                return n
            continue
        if current == section and re.match(rf"{re.escape(key)}\s*=", s):
            return n
    if section is not None:
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip() == f"[{section}]":
                return n
    return 0


def _where(path: Path, text: str, section: str | None, key: str) -> str:
    line = _line_of(text, section, key)
    return f"{path}:{line}" if line else str(path)


def _check_schema(path: Path, text: str, raw: dict) -> None:
    for key, value in raw.items():
        if key not in TOP_KEYS:
            raise ProfileError(f"{_where(path, text, None, key)}: unknown key '{key}' "
                               f"(expected one of {', '.join(TOP_KEYS)})")
        if not isinstance(value, TOP_KEYS[key]):
            raise ProfileError(f"{_where(path, text, None, key)}: '{key}' must be a "
                               f"{TOP_KEYS[key].__name__}")
    if "machine" not in raw:
        raise ProfileError(f"{path}: missing the [machine] table")
    for section, schema in (("machine", MACHINE_KEYS), ("gdb", GDB_KEYS)):
        table = raw.get(section, {})
        for key, value in table.items():
            if key not in schema:
                raise ProfileError(f"{_where(path, text, section, key)}: unknown key "
                                   f"'{section}.{key}' (expected one of {', '.join(schema)})")
            kind = schema[key][0]
            if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
                what = "a list of strings" if kind is list else "a string"
                raise ProfileError(f"{_where(path, text, section, key)}: '{section}.{key}' must be {what}")
        for key, (_, required) in schema.items():
            if required and key not in table:
                raise ProfileError(f"{_where(path, text, section, '')}: [{section}] needs '{key}'")
    for key, value in raw.get("vars", {}).items():
        if not isinstance(value, str):
            raise ProfileError(f"{_where(path, text, 'vars', key)}: 'vars.{key}' must be a string")


def _expand(value, variables: dict, where: str, escape_commas: bool = False):
    if isinstance(value, list):
        return [_expand(v, variables, where) for v in value]

    def sub(m):
        if m.group(1) not in variables:
            raise ProfileError(f"{where}: unknown variable ${{{m.group(1)}}}")
        return qemu_escape(variables[m.group(1)]) if escape_commas else variables[m.group(1)]

    out = _VAR.sub(sub, value)
    return str(Path(out).expanduser()) if out.startswith("~") else out


def _resolve_vars(path: Path, text: str, raw_vars: dict, overrides: dict) -> dict:
    resolved = {"build": str(build_dir()), "repo": str(REPO)}
    pending = dict(raw_vars)
    pending.update(overrides)
    for _ in range(len(pending) + 1):  # each pass resolves at least one, or there is a cycle
        progress = False
        for name, value in list(pending.items()):
            refs = _VAR.findall(value)
            if all(r in resolved for r in refs):
                resolved[name] = _expand(value, resolved, _where(path, text, "vars", name))
                del pending[name]
                progress = True
            elif any(r not in resolved and r not in pending for r in refs):
                bad = next(r for r in refs if r not in resolved and r not in pending)
                raise ProfileError(f"{_where(path, text, 'vars', name)}: unknown variable ${{{bad}}}")
        if not pending or not progress:
            break
    if pending:
        name = next(iter(pending))
        raise ProfileError(f"{_where(path, text, 'vars', name)}: variables refer to each other in a cycle")
    return resolved


def _line_of_item(text: str, key_line: int, item: str) -> int:
    """The line (from the `extra_args =` line on) where the list item `item` is written."""
    lines = text.splitlines()
    for n in range(max(key_line, 1), len(lines) + 1):
        if f'"{item}"' in lines[n - 1] or f"'{item}'" in lines[n - 1]:
            return n
        if n > key_line and re.match(r"\s*[A-Za-z_]+\s*=|\s*\[", lines[n - 1]):
            break
    return key_line


def _extra_args(path: Path, text: str, raw: list, variables: dict) -> list[str]:
    """machine.extra_args expanded (commas of ${vars} doubled inside QEMU's comma-separated options) and
    checked: nothing that adds a gdbstub, a monitor, a serial port or a network listener."""
    key_line = _line_of(text, "machine", "extra_args")
    out = []
    for i, item in enumerate(raw):
        option = raw[i - 1] if i else ""
        norm = option[1:] if option.startswith("--") else option
        where = f"{path}:{_line_of_item(text, key_line, item)}" if key_line else str(path)
        value = _expand(item, variables, where, escape_commas=norm in COMMA_OPTIONS)
        this = item[1:] if item.startswith("--") else item
        if this in REFUSED_OPTIONS:
            raise ProfileError(f"{where}: extra_args: '{item}' is not allowed: {REFUSED_OPTIONS[this]}")
        if this == "-display" and i + 1 < len(raw) and re.match(r"(vnc|spice|curses|gtk|sdl|egl)", raw[i + 1]):
            raise ProfileError(f"{where}: extra_args: '-display {raw[i + 1]}' is not allowed: the session runs "
                               "QEMU without a display")
        if option.startswith("-") and not item.startswith("-") and _NETWORK_VALUE.search(item):
            raise ProfileError(f"{where}: extra_args: '{option} {item}' is not allowed: it opens a network or "
                               "socket endpoint (the session's sockets are private; use a file)")
        out.append(value)
    return out


def parse_overrides(items: list[str]) -> dict:
    """`--set NAME=VALUE` items as a dict; a malformed one is an error."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ProfileError(f"--set {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def load(name_or_path: str, overrides: dict | None = None) -> Profile:
    """Load a profile by name (qemu_profiles/NAME.toml) or path, with --set overrides applied."""
    path = Path(name_or_path)
    if not path.suffix:
        path = profiles_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(f"unknown profile '{name_or_path}' (available: {', '.join(available())})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                           "TOML files are UTF-8") from None
    except OSError as e:
        raise ProfileError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: {e}") from None
    _check_schema(path, text, raw)
    overrides = overrides or {}
    unknown = [k for k in overrides if k not in raw.get("vars", {})]
    if unknown:
        raise ProfileError(f"--set {unknown[0]}: profile '{path.stem}' has no variable '{unknown[0]}' "
                           f"(it has: {', '.join(raw.get('vars', {}))})")
    variables = _resolve_vars(path, text, raw.get("vars", {}), overrides)
    machine = {k: _expand(v, variables, _where(path, text, "machine", k)) for k, v in raw["machine"].items()
               if k != "extra_args"}
    if "extra_args" in raw["machine"]:
        machine["extra_args"] = _extra_args(path, text, raw["machine"]["extra_args"], variables)
    gdb = {k: _expand(v, variables, _where(path, text, "gdb", k)) for k, v in raw.get("gdb", {}).items()}
    for key, check in (("memory", memory_bytes), ("smp", check_smp)):
        if key in machine:
            try:
                check(machine[key])
            except ProfileError as e:
                raise ProfileError(f"{_where(path, text, 'machine', key)}: {e}") from None
    return Profile(path.stem, path, raw.get("description", ""), variables, machine, gdb)
