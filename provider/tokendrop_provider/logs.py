"""Provider logging: hclog-style JSON lines on stderr, which Terraform folds into its own log.

Terraform shows plugin output only when TF_LOG (or TF_LOG_PROVIDER) asks for it, so the level follows
those variables ("off" is off; an unknown level means warnings only, never debug). `TOKENDROP_LOG_PATH`
also writes the same lines to a file, created 0600. Every line passes through `secret.scrub`, so a token
value that slipped into a message is still never written.

`install_guards()` makes sure nothing else reaches stderr unscrubbed either: stderr itself is wrapped,
and uncaught exceptions (main thread, other threads, unraisable ones), grpc's own logger and logging's
last-resort handler all go through the scrubber.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import TextIO

from .secret import scrub

_LEVELS = {
    "TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
    "WARNING": logging.WARNING, "ERROR": logging.ERROR, "JSON": logging.DEBUG,
}
_HCLOG_LEVEL = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
                logging.ERROR: "error", logging.CRITICAL: "error"}


class HclogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        entry = {
            "@level": _HCLOG_LEVEL.get(record.levelno, "info"),
            "@message": scrub(message),
            "@module": "tokendrop." + record.name.removeprefix("tokendrop").lstrip("."),
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
        }
        return json.dumps(entry)


def level_from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """The level the most specific variable asks for; None when logging is off or not asked for. An
    unknown value is a typo, not a request for everything: it gives warnings only."""
    for name in ("TF_LOG_PROVIDER_TOKENDROP", "TF_LOG_PROVIDER", "TF_LOG", "TOKENDROP_LOG"):
        value = env.get(name, "").strip().upper()
        if value:
            return None if value == "OFF" else _LEVELS.get(value, logging.WARNING)
    return None


class _ScrubbedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose own failures never print the record (logging's default handleError
    writes the message and its arguments to stderr)."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        with contextlib.suppress(Exception):
            sys.__stderr__.write(scrub(f"tokendrop: a log line from {record.name} could not be written "
                                       f"({type(error).__name__})\n"))


def _open_private(path: str) -> TextIO:
    """Open the log file for appending, readable by this user only (it may hold request paths and ids)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    return os.fdopen(fd, "a", encoding="utf-8")


def configure() -> None:
    logger = logging.getLogger("tokendrop")
    logger.propagate = False
    level = level_from_env()
    path = os.environ.get("TOKENDROP_LOG_PATH")
    if level is None and not path:
        logger.setLevel(logging.WARNING)
        logger.addHandler(logging.NullHandler())
        return
    logger.setLevel(level if level is not None else logging.DEBUG)
    formatter = HclogFormatter()
    if level is not None:
        stderr = _ScrubbedHandler(sys.stderr)
        stderr.setFormatter(formatter)
        logger.addHandler(stderr)
    if path:
        file_handler = _ScrubbedHandler(_open_private(path))
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    # Libraries log through their own loggers; route the ones that matter and keep them quiet.
    for name in ("botocore", "urllib3"):
        lib = logging.getLogger(name)
        lib.setLevel(logging.WARNING)
        for handler in logger.handlers:
            lib.addHandler(handler)
    # grpc logs exceptions that escape a handler ("Exception calling application") with their chain.
    grpc_logger = logging.getLogger("grpc")
    grpc_logger.propagate = False
    for handler in logger.handlers:
        grpc_logger.addHandler(handler)


# --- nothing reaches stderr unscrubbed ------------------------------------------------------------------


_MAX_PENDING = 1 << 16


class ScrubbingStream:
    """Wraps a text stream: whole lines are scrubbed before they are written (a partial line waits for
    its end or a flush, so a value is never split across two scrubs)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self._stream.write(scrub(complete + "\n"))
            elif len(self._pending) > _MAX_PENDING:  # a line without end must not grow without bound
                self._stream.write(scrub(self._pending))
                self._pending = ""
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:  # else __getattr__ would bypass the scrubber
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._stream.write(scrub(self._pending))
                self._pending = ""
            self._stream.flush()

    def __getattr__(self, name: str) -> object:  # fileno, encoding, isatty...
        return getattr(self._stream, name)


def _write_exception(kind: str, exc_type: type[BaseException], exc: BaseException | None,
                     tb: TracebackType | None) -> None:
    with contextlib.suppress(Exception):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(scrub(f"tokendrop: {kind}\n{text}"))
        sys.stderr.flush()


def install_guards() -> None:
    """Route every way an exception or a stray line can reach stderr through the scrubber."""
    if not isinstance(sys.stderr, ScrubbingStream):
        sys.stderr = ScrubbingStream(sys.stderr)  # type: ignore[assignment]
    sys.excepthook = lambda t, e, tb: _write_exception("uncaught exception", t, e, tb)
    threading.excepthook = lambda a: _write_exception(
        f"uncaught exception in thread {a.thread.name if a.thread else '?'}",
        a.exc_type, a.exc_value, a.exc_traceback)
    sys.unraisablehook = lambda u: _write_exception(
        "unraisable exception", type(u.exc_value) if u.exc_value else Exception, u.exc_value, u.exc_traceback)
    # Records of loggers without handlers (third-party ones) end here; this one scrubs them.
    last_resort = _ScrubbedHandler(sys.stderr)
    last_resort.setLevel(logging.WARNING)
    last_resort.setFormatter(HclogFormatter())
    logging.lastResort = last_resort
