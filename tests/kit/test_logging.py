"""Structured logs carry the request id."""

from __future__ import annotations

import json
import logging

from siyu.kit.logging import JsonFormatter, request_id_var


def test_json_line_has_message_level_request_id_and_extras() -> None:
    record = logging.LogRecord("siyu.http", logging.INFO, __file__, 1, "request %s", ("ok",), None)
    record.status = 201
    token = request_id_var.set("req-7")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert {k: line[k] for k in ("level", "logger", "message", "request_id", "status")} == {
        "level": "info",
        "logger": "siyu.http",
        "message": "request ok",
        "request_id": "req-7",
        "status": 201,
    }
