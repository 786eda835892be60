"""Time to a usable prompt: `gdb -x rkvm.py` against plain GDB (`file vmlinux` + `target remote`)
on the same warm session, alternating A B A B in short windows; medians and their ratio.

Usage: build/venv/bin/python benchmarks/attach.py [--profile lab|lab-kaslr] [--rounds N]
The lab-kaslr run includes rkvm's run of the guest to VBAR_EL1 (the slide); plain GDB there has
wrong symbols, so it is the lower bound, not a like-for-like.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gdb_rkvm.qemu import session  # noqa: E402
from gdb_rkvm.paths import REPO  # noqa: E402


def _timed(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="lab")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RKVM_SESSION_DIR"] = tmp
        sess = session.start(args.profile, directory=Path(tmp))
        try:
            plain = ["gdb-multiarch", "-nx", "-q", "-batch", "-ex", "set auto-load python-scripts off",
                     "-ex", f"file {sess.vmlinux}", "-ex", f"target remote {sess.gdb_address}", "-ex", "info threads"]
            rkvm = ["gdb-multiarch", "-nx", "-q", "-batch", "-x", str(REPO / "rkvm.py"), "-ex", "info threads"]
            _timed(plain)  # page cache warm for both
            a, b = [], []
            for _ in range(args.rounds):
                a.append(_timed(plain))
                b.append(_timed(rkvm))
        finally:
            session.stop(Path(tmp))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"attach ({args.profile}): plain GDB {ma:.2f} s, gdb -x rkvm.py {mb:.2f} s, ratio {mb / ma:.2f} "
          f"(medians of {args.rounds} alternating windows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
