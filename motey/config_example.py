"""``motey config-example``: print the documented default ``config.ini``.

An installed node has no repository to copy the file from; this prints the very file the
package ships, so ``motey config-example > /etc/motey/config.ini`` starts a new node's
configuration with every key and its comment.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from motey.packaged import default_config_file

COMMAND = "config-example"
HELP = "print the documented default config.ini (needs no configuration file)"


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the sub-command to the ``motey`` parser."""
    commands.add_parser(COMMAND, help=HELP, description=HELP)


def run(out: TextIO | None = None) -> int:
    """Write the default configuration to ``out`` (standard output by default)."""
    path = default_config_file()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"motey: error: default config.ini not found ({exc})", file=sys.stderr)
        return 1
    (out or sys.stdout).write(text)
    return 0
