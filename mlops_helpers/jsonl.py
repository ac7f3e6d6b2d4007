"""JSON Lines files that processes append to: one writer that a kill cannot corrupt, one reader (notebooks 04, 07).

The prediction log of the service and the notifications of the alert receiver are both written this way: each
append is a single ``write`` on a file opened with ``O_APPEND``, so a writer killed mid-way leaves at most one torn
last line, which :func:`read_jsonl` skips and the next writer closes off with a newline.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class AppendOnlyFile:
    """A JSON Lines file opened for appending: :meth:`append` writes all its rows in one system call."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        if self.path.stat().st_size and self.path.read_bytes()[-1:] != b"\n":
            self._write(b"\n")  # a torn line left by a killed writer stays alone on its line

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, rows: list[dict[str, Any]], sort_keys: bool = False) -> None:
        """Append ``rows`` (JSON-serialisable dicts), one line each, in one write."""
        data = "".join(json.dumps(row, separators=(",", ":"), sort_keys=sort_keys) + "\n" for row in rows).encode()
        with self._lock:
            self._write(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file, oldest first; a missing file is empty, lines that are not a complete JSON
    object (a torn last line) are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
