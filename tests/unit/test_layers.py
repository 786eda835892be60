"""The package's folders say where code runs; imports go one way. Checked on the source, so a wrong
import fails here and not in an end-to-end run (docs/architecture.md has the table)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gdb_rkvm"

# folder -> what it must not import ("gdb" is GDB's embedded module, only inside GDB)
FORBIDDEN = {
    "arch": {"gdb", "gdb_rkvm.model", "gdb_rkvm.qemu", "gdb_rkvm.live", "gdb_rkvm.commands", "gdb_rkvm.host"},
    "model": {"gdb", "gdb_rkvm.qemu", "gdb_rkvm.live", "gdb_rkvm.commands", "gdb_rkvm.host"},
    "qemu": {"gdb", "gdb_rkvm.live", "gdb_rkvm.commands", "gdb_rkvm.host"},
    "live": {"gdb_rkvm.commands", "gdb_rkvm.host"},
    "commands": {"gdb_rkvm.host"},
    "host": {"gdb", "gdb_rkvm.live", "gdb_rkvm.commands"},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a source file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(folder: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in imported_modules(path):
            for bad in FORBIDDEN[folder]:
                if name == bad or name.startswith(bad + "."):
                    found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_go_one_way(folder):
    assert (PACKAGE / folder).is_dir()
    assert violations(folder) == []


def test_checker_sees_a_bad_import(tmp_path, monkeypatch):
    """The check itself can fail: a file in arch/ importing gdb and the live layer is reported."""
    fake = tmp_path / "gdb_rkvm"
    (fake / "arch").mkdir(parents=True)
    (fake / "arch" / "bad.py").write_text("import gdb\nfrom ..live import gdb_target\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert sorted(violations("arch")) == ["arch/bad.py imports gdb", "arch/bad.py imports gdb_rkvm.live",
                                          "arch/bad.py imports gdb_rkvm.live.gdb_target"]


def test_commands_do_not_import_each_other():
    """Commands share through the live layer or commands/base.py, not through another command."""
    shared = {"base", "completion", "format", "style", "prefix", "settings", "functions"}
    found = []
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        if path.stem == "__init__":
            continue
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[:2] == ["gdb_rkvm", "commands"] and len(parts) > 2 and parts[2] not in shared:
                found.append(f"{path.name} imports {name}")
    assert found == []


