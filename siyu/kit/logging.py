"""Structured JSON logging with the current request id on every line, personal data masked.

`configure_logging` puts one handler on the root logger (uvicorn's loggers propagate to it) with a
`PiiFilter`: phone numbers, e-mails, openid/unionid/external_userid and secrets (Authorization
headers, passwords, tokens, `access_token=` and the member link's `t=`) are masked in the message,
its arguments and `extra` fields before any formatter sees them (see `siyu.kit.masking`).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from siyu.kit.masking import mask_text, mask_value

request_id_var: ContextVar[str | None] = ContextVar("siyu_request_id", default=None)
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class PiiFilter(logging.Filter):
    """Masks personal data and secrets in a record in place; never drops a record.

    Arguments are masked one by one, so formatters that unpack them (uvicorn's access log) keep
    working; a secret that only shows once message and arguments are joined ("password=%s")
    collapses the record into its masked message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_siyu_masked", False):
            return True
        if not record.args:  # with arguments, "%s" placeholders must survive: the joined message is checked below
            record.msg = mask_text(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(mask_value("", a) if isinstance(a, str | bytes) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: mask_value(str(k), v) for k, v in record.args.items()}
        if record.args:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a malformed call: leave it to the formatter's own error path
                message = None
            if message is not None and (masked := mask_text(message)) != message:
                record.msg, record.args = masked, ()
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and not key.startswith("_"):
                record.__dict__[key] = mask_value(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        record.__dict__["_siyu_masked"] = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id and any `extra` fields."""

    _RESERVED = _RESERVED

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in self._RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_text:
            payload["exc_info"] = record.exc_text
        elif record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def log_handler(*, json_lines: bool = True) -> logging.Handler:
    """A stderr handler with siyu's formatter and the PII filter (what `configure_logging` installs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(PiiFilter())
    return handler


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route siyu's and uvicorn's logs through one masking handler on stderr."""
    handler = log_handler(json_lines=json_lines)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
