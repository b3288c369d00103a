"""How the HTTP server (RPC, artifacts, metrics) logs what its clients do wrong.

aiohttp logs a malformed request, a body that does not decode, or a client that hangs up
in the middle of a response as an ERROR with a traceback. None of those is a fault of the
node, and a client could fill the log with them. Through `server_logger()` each becomes one
line: malformed requests at INFO (worth seeing if they keep coming), disconnections at
DEBUG. Everything else (a real bug in a handler) keeps its ERROR and traceback.
"""

from __future__ import annotations

import logging

from aiohttp import http_exceptions, web

_LOGGER = "aichain.http"
_MALFORMED = (http_exceptions.HttpProcessingError, web.RequestPayloadError)
_GONE = (ConnectionResetError, BrokenPipeError)


class _OneLineClientErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if isinstance(exc, _MALFORMED):
            level = logging.INFO
        elif isinstance(exc, _GONE) or _already_sent(exc):
            level = logging.DEBUG
        else:
            return True
        detail = " ".join(str(exc).split())[:200]
        record.msg = f"{record.getMessage()}: {type(exc).__name__}: {detail}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = level, logging.getLevelName(level)
        return logging.getLogger(_LOGGER).isEnabledFor(level)


def _already_sent(exc: BaseException) -> bool:
    """aiohttp's own complaint when a handler failed after its response started (the client left)."""
    return isinstance(exc, ConnectionError) and "Response is sent already" in str(exc)


def server_logger() -> logging.Logger:
    """The logger to give aiohttp's server (`AppRunner(..., logger=server_logger())`)."""
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(f, _OneLineClientErrors) for f in logger.filters):
        logger.addFilter(_OneLineClientErrors())
    return logger
