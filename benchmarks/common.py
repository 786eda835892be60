"""What both benchmarks share: boot a lab session, run a GDB script in it after rkvm.ko's install,
read the JSON the script wrote, end the session."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gdb_rkvm.qemu import session  # noqa: E402
from gdb_rkvm.paths import REPO  # noqa: E402


def run_in_lab(gdb_script: str, timeout: float = 600) -> dict:
    """Run benchmarks/<gdb_script> inside GDB on a fresh lab stopped at installed-all; its result."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RKVM_SESSION_DIR"] = tmp
        out = Path(tmp) / "result.json"
        session.start("lab", directory=Path(tmp), ram_file=os.environ.get("RKVM_BENCH_RAM_FILE", "1") != "0")
        try:
            subprocess.run(["gdb-multiarch", "-nx", "-q", "-batch", "-x", str(REPO / "rkvm.py"),
                            "-ex", "rkvm run-to installed-all", "-x", str(REPO / "benchmarks" / gdb_script)],
                           env={**os.environ, "RKVM_BENCH_OUT": str(out)}, check=True, timeout=timeout,
                           capture_output=True)
            return json.loads(out.read_text())
        finally:
            session.stop(Path(tmp))
