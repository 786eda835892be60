"""Guest text in triage: the panic message, the kernel log and the console line, on the terminal and
in report.md/report.json."""

import json
import re

from gdb_rkvm.host.triage import report, rules, run

from tests.unit.test_triage_rules import cpu, snap

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\r"


class FakeMi:
    def __init__(self, printed):
        self.printed = printed

    def check(self, command):
        assert command == "x/s $x0"
        return f'0xffff800080a1b2c3:\t"{self.printed}"\n'

    def run_for(self, seconds):
        return {}


class FakeWatch:
    def __init__(self, console=""):
        self.text = console

    def console(self):
        return self.text


def test_panic_message_from_gdb_keeps_escapes_escaped():
    printed = r"\033]0;pwned\007\033[2Jboom\r\n"     # how x/s prints the guest's bytes
    p = run._panic_message(FakeMi(printed), FakeWatch(), "panic", {"thread-id": "1"})
    assert p["message"] == "\\x1b]0;pwned\\x07\\x1b[2Jboom"
    assert not re.search("[\x00-\x1f\x7f]", p["message"])


def test_panic_message_from_the_console_is_escaped():
    console = f"[ 1.0] Kernel panic - not syncing: {ESCAPES}fmt %d\n"
    p = run._panic_message(FakeMi(r"fmt %d"), FakeWatch(console), "panic", {})
    assert p["message"] == "\\x1b]0;pwned\\x07\\x1b[2J"      # the console line ends at its CR


def hostile_report():
    log = ["[ 0.1] ok", "```", "# Injected heading", "<script>alert(1)</script>", f"bell{ESCAPES}", "`````"]
    panic = {"message": "``` closes? " + "\\x1b", "function": "panic", "cpu": 0, "log": []}
    findings = rules.diagnose(snap([cpu(0)]), {"panic": panic})
    ctx = {"stop": "breakpoint on panic()", "kernel_log": [run.guest_text.escape(x) for x in log],
           "kernel_log_source": "the serial console"}
    return report.build("findings", "1 finding(s): kernel-panic", findings, snap([cpu(0)]), ctx,
                        {"profile": "lab", "cmdline": "console=ttyAMA0 `x` |"})


def test_report_md_fences_hold_and_nothing_raw_gets_through():
    md = report.markdown(hostile_report())
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", md)
    lines = md.splitlines()
    start = lines.index("## Kernel log (last lines, from the serial console)") + 1
    fence = lines[start]
    assert set(fence) == {"`"} and len(fence) == 6                 # longer than the log's 5-backtick run
    end = lines.index(fence, start + 1)
    assert lines[start + 1:end] == ["[ 0.1] ok", "```", "# Injected heading", "<script>alert(1)</script>",
                                    "bell\\x1b]0;pwned\\x07\\x1b[2J\\x0d", "`````"]
    assert end == len(lines) - 1                                   # the block runs to the end: not closed early
    summary = next(x for x in lines if x.startswith("kernel panic:"))
    assert summary == "kernel panic: \\`\\`\\` closes? \\\\x1b."      # inert in Markdown


def test_report_json_escapes_control_characters():
    text = json.dumps(hostile_report())
    assert not re.search("[\x00-\x1f\x7f]", text)
