"""How the client commands show things: tables, and a deployment's progress."""

from __future__ import annotations

from typing import Any, TextIO


def short(service: dict[str, Any], width: int = 60) -> str:
    """A service's state message cut to one table cell."""
    message = str(service.get("state_message") or "").replace("\n", " ")
    return message if len(message) <= width else message[: width - 1] + "…"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(str(cell)))
    for row in [headers, *rows]:
        cells = [str(c).ljust(widths[i]) for i, c in enumerate(row[:-1])] + [str(row[-1])]
        print("  ".join(cells).rstrip())


class Progress:
    """A deployment as it happens: one redrawn block on a terminal, plain lines otherwise.

    On a terminal, each image has a line (placement, state, message) that is rewritten in
    place; elsewhere (a pipe, a CI log) every change is one new line, so logs stay readable.
    """

    def __init__(self, stream: TextIO) -> None:
        self._out = stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._drawn = 0

    def line(self, text: str) -> None:
        self._clear()
        print(text, file=self._out, flush=True)

    def update(self, service: dict[str, Any]) -> None:
        rows = []
        changed = []
        for image in service.get("images") or []:
            labels = (image.get("parameters") or {}).get("labels") or {}
            label = labels.get("com.docker.compose.service") or image.get("name")
            key = (image.get("node"), image.get("state"), image.get("state_message"))
            rows.append(
                f"  {label:<24} {image.get('node') or 'unplaced':<16} {image.get('state'):<14}"
                f" {image.get('state_message') or ''}".rstrip()
            )
            if self._seen.get(image["id"]) != key:
                self._seen[image["id"]] = key
                where = f"on {image['node']}" if image.get("node") else "not placed yet"
                message = f": {image['state_message']}" if image.get("state_message") else ""
                changed.append(f"image {label} {where}: {image.get('state')}{message}")
        skey = (service.get("state"), service.get("state_message"))
        if self._seen.get(service["id"]) != skey:
            self._seen[service["id"]] = skey
            changed.append(
                f"service {service.get('service_name')}: {service.get('state')}"
                + (f": {service['state_message']}" if service.get("state_message") else "")
            )
        if self._tty:
            if changed:
                self._clear()
                header = f"{service.get('service_name')}: {service.get('state')}"
                for text in [header, *rows]:
                    print(text, file=self._out)
                self._drawn = len(rows) + 1
                self._out.flush()
        else:
            for text in changed:
                print(text, file=self._out, flush=True)

    def done(self) -> None:
        self._drawn = 0  # leave the last block on screen

    def _clear(self) -> None:
        if self._tty and self._drawn:
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0
