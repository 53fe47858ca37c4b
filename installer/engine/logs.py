"""Logging of a run: a log file with everything, the terminal with less."""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
from typing import IO, List, Optional

LOGGER = "satchel"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def default_log_path(root: pathlib.Path, action: str, when: datetime.datetime) -> pathlib.Path:
    stamp = when.strftime("%Y%m%dT%H%M%S.%fZ")
    return root / "var/log/satchel" / f"{action}-{stamp}.log"


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RunLogging:
    """Install the handlers of one run on the 'satchel' logger; close() removes them."""

    def __init__(self, log_file: Optional[pathlib.Path], console: Optional[IO[str]],
                 debug: bool = False, quiet: bool = False) -> None:
        self.logger = logging.getLogger(LOGGER)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.handlers: List[logging.Handler] = []
        self.log_file = log_file
        self._stream: Optional[IO[str]] = None
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            fd = os.open(str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._stream = os.fdopen(fd, "a", encoding="utf-8")
            fh = logging.StreamHandler(self._stream)
            fh.setFormatter(_UTCFormatter(FILE_FORMAT))
            fh.setLevel(logging.DEBUG)
            self._add(fh)
        if console is not None:
            ch = logging.StreamHandler(console)
            ch.setFormatter(logging.Formatter("%(message)s" if not debug
                                              else "[%(levelname)s] %(name)s: %(message)s"))
            ch.setLevel(logging.DEBUG if debug else
                        (logging.WARNING if quiet else logging.INFO))
            self._add(ch)

    def _add(self, handler: logging.Handler) -> None:
        self.logger.addHandler(handler)
        self.handlers.append(handler)

    def close(self) -> None:
        for h in self.handlers:
            self.logger.removeHandler(h)
            h.flush()
        self.handlers = []
        if self._stream is not None:
            self._stream.close()
            self._stream = None
