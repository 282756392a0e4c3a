"""Logbook to the console and to the configured log file; stdlib logging routed in."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import logbook
from logbook.compat import redirect_logging

FORMAT = "[{record.time:%Y-%m-%d %H:%M:%S}] {record.level_name} {record.channel}: {record.message}"


def setup_logging(
    log_path: str, file_name: str, level: str = "INFO", console: bool = True
) -> Iterator[logbook.NestedSetup]:
    """A dependency-injector Resource: push handlers, yield, pop them on shutdown."""
    level_name = level.upper()
    try:
        logbook.lookup_level(level_name)
    except LookupError:
        level_name = "INFO"
    handlers: list[logbook.Handler] = [logbook.NullHandler()]
    if log_path:
        folder = Path(log_path)
        folder.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logbook.FileHandler(
                str(folder / file_name),
                level=level_name,
                bubble=True,
                format_string=FORMAT,
                delay=True,
            )
        )
    if console:
        handlers.append(
            logbook.StreamHandler(sys.stderr, level=level_name, bubble=True, format_string=FORMAT)
        )
    setup = logbook.NestedSetup(handlers)
    setup.push_application()
    redirect_logging()
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("urllib3", "docker", "cheroot"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        yield setup
    finally:
        setup.pop_application()
        for handler in handlers:
            handler.close()
