"""Provider logging: hclog-style JSON lines on stderr, which Terraform folds into its own log.

Terraform shows plugin output only when TF_LOG (or TF_LOG_PROVIDER) asks for it, so the level follows
those variables. `TOKENDROP_LOG_PATH` also writes the same lines to a file. Every line passes through
`secret.scrub`, so a token value that slipped into a message is still never written.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

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
    for name in ("TF_LOG_PROVIDER_TOKENDROP", "TF_LOG_PROVIDER", "TF_LOG", "TOKENDROP_LOG"):
        value = env.get(name, "").strip().upper()
        if value:
            return _LEVELS.get(value, logging.DEBUG)
    return None


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
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(formatter)
        logger.addHandler(stderr)
    if path:
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    # Libraries log through their own loggers; route the ones that matter and keep them quiet.
    for name in ("botocore", "urllib3", "hvac"):
        lib = logging.getLogger(name)
        lib.setLevel(logging.WARNING)
        for handler in logger.handlers:
            lib.addHandler(handler)
