"""``motey run`` leaves without the interpreter's teardown, losing no output (issue 12).

The teardown (clearing every module, a last garbage collection) was 136 ms of an idle
node's 230 ms from SIGTERM to exit; skipping it must not lose buffered output or the
exit code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

SCRIPT = """
import sys
from motey.fast_exit import exit_now
print("out" * 1000, end="")  # buffered: stdout is a pipe
sys.stderr.write("err")
exit_now(3)
print("never")
"""


def test_exit_now_flushes_and_keeps_the_code() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stdout == "out" * 1000
    assert done.stderr == "err"


def test_motey_run_exits_zero_with_its_last_log_line(node_factory: Any) -> None:
    node = node_factory()
    assert node.stop() == 0
    last = node.log().rstrip().splitlines()[-1]
    assert re.search(r"EventBus stopped in [0-9.]+ s$", last), last  # the last component
