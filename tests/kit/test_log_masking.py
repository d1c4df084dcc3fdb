"""Personal data and secrets are masked in log lines, JSON and plain, messages and `extra` fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from siyu.kit.logging import PLAIN_FORMAT, JsonFormatter, PiiFilter
from siyu.kit.masking import mask_text, mask_value

PHONE, EMAIL = "13812341234", "alice.wang@example.com"
EXTERNAL_USERID, OPENID = "wmAbCdEfGh1234567890abcdefghij", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
SECRETS = ("corp-secret-9f8e7d", "hunter2-password", "siyu_TOKENabcdefghijklmnopqrstu", "ACCESS123token")


@pytest.fixture(params=["json", "plain"])
def sink(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """A logger whose handler masks like `configure_logging`'s, in JSON or plain lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if request.param == "json" else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(PiiFilter())
    logger = logging.getLogger("siyu.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _emit(*args: object, **extra: object) -> None:
    logging.getLogger("siyu.test.masking").info(*args, extra=extra)


def test_each_kind_is_masked_in_messages_and_arguments(sink: io.StringIO) -> None:
    _emit("customer %s added, phone %s, email %s", EXTERNAL_USERID, PHONE, EMAIL)
    _emit("oauth openid=%s unionid %s", OPENID, OPENID)
    _emit("call failed: password=%s secret: %s", SECRETS[1], SECRETS[0])
    _emit("GET /cgi-bin/user/get?access_token=%s&userid=zhang HTTP/1.1", SECRETS[3])
    _emit("headers {'Authorization': 'Bearer %s'} and Authorization: Bearer %s", SECRETS[2], SECRETS[2])
    _emit("member link /m/enter?t=%s opened, unsubscribe /u/%s", "eyJ3IjoxfQ.Zz9.abc", "tok123abc")
    output = sink.getvalue()
    for value in (PHONE, EMAIL, EXTERNAL_USERID, OPENID, *SECRETS, "eyJ3IjoxfQ", "tok123abc"):
        assert value not in output
    for masked in ("wmAb***", "138****1234", "a***@example.com", "oUpF***", "password=***", "secret: ***"):
        assert masked in output
    assert "access_token=***&userid=zhang" in output
    assert "/m/enter?t=*** opened, unsubscribe /u/***" in output


def test_extra_fields_are_masked_by_name_and_content(sink: io.StringIO) -> None:
    _emit(
        "wecom settings saved",
        corp_secret=SECRETS[0],
        headers={"authorization": "Bearer " + SECRETS[2], "accept": "text/html"},
        external_userid=EXTERNAL_USERID,
        phone="+8613812341234",
        email=EMAIL,
        path="/s/abc?access_token=" + SECRETS[3],
        status=201,
        token_id=7,
    )
    output = sink.getvalue()
    for value in (PHONE, EMAIL, EXTERNAL_USERID, *SECRETS):
        assert value not in output
    if output.startswith("{"):
        line = json.loads(output)
        assert {k: line[k] for k in ("corp_secret", "headers", "external_userid", "phone", "email", "path")} == {
            "corp_secret": "***",
            "headers": {"authorization": "***", "accept": "text/html"},
            "external_userid": "wmAb***",
            "phone": "+86138****1234",
            "email": "a***@example.com",
            "path": "/s/abc?access_token=***",
        }
        assert (line["status"], line["token_id"]) == (201, 7)
    else:
        assert output.endswith("siyu.test.masking: wecom settings saved\n")


def test_tracebacks_are_masked(sink: io.StringIO) -> None:
    try:
        raise RuntimeError(f"login failed for {EMAIL} with password={SECRETS[1]}")
    except RuntimeError:
        logging.getLogger("siyu.test.masking").exception("unhandled error")
    output = sink.getvalue()
    assert "RuntimeError: login failed for a***@example.com with password=***" in output.replace("\\n", "\n")
    assert SECRETS[1] not in output and EMAIL not in output


def test_uvicorn_access_records_keep_their_argument_shape() -> None:
    # uvicorn's access formatter unpacks five arguments; masking must not collapse them
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.9:5000", "GET", "/m/enter?t=secret.sig", "1.1", 303),
        None,
    )
    assert PiiFilter().filter(record) is True
    assert record.args == ("203.0.113.9:5000", "GET", "/m/enter?t=***", "1.1", 303)


@pytest.mark.parametrize(
    "text",
    [
        "order TB13812341234 paid 12900 fen",
        "workspace_settings_updated for customer 42 at 2026-11-23T02:00:00Z",
        "request id 1f0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b took 13 ms",
        "csrf token ok; token_id=7; tokens listed",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_masking_is_idempotent() -> None:
    text = f"{PHONE} {EMAIL} {EXTERNAL_USERID} {OPENID} password={SECRETS[1]} Bearer {SECRETS[2]}"
    once = mask_text(text)
    assert mask_text(once) == once
    assert once == "138****1234 a***@example.com wmAb*** oUpF*** password=*** Bearer ***"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('login password="correct horse battery" rejected', 'login password="***" rejected'),
        ('body {"password": "a,b", "user": "ops"}', 'body {"password": "***", "user": "ops"}'),
        ('{"password": "say \\"hi\\" now"}', '{"password": "***"}'),
        ("config secret: 'abc def' loaded", "config secret: '***' loaded"),
        ('yaml secret: "abc def"', 'yaml secret: "***"'),
        ('Cookie: sid=abc; csrftoken="zz"; lang=en\nnext line', "Cookie: ***\nnext line"),
        ('Set-Cookie: siyu_session="x y"; Path=/', "Set-Cookie: ***"),
        ('Authorization: "Basic dXNlcjpwYXNz" sent', 'Authorization: "***" sent'),
        ("call 138 0000 1234 now", "call 138****1234 now"),
        ("call 138-0000-1234 now", "call 138****1234 now"),
        ("call +86 138 0000 1234 now", "call +86138****1234 now"),
        ("call +86-138-0000-1234 now", "call +86138****1234 now"),
    ],
)
def test_quoted_values_cookie_headers_and_grouped_phones_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert mask_text(masked) == masked


@pytest.mark.parametrize(
    "text",
    ["paid 2026-11-23 12:00:00 at 138 yuan", "ids 1380 0001 2345 and 138 0000-1234", "status: ok, token_count=3"],
)
def test_grouped_digits_that_are_not_one_phone_are_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_numbers_under_phone_and_secret_names_are_masked_counts_and_ids_are_not() -> None:
    assert mask_value("phone", 13800001234) == "138****1234"
    assert mask_value("mobile", 13800001234.0) == "138****1234"
    assert mask_value("pin_secret", 123456) == "***"
    assert mask_value("password", 20261123) == "***"
    assert mask_value("token_id", 7) == 7
    assert mask_value("phone_count", 3) == 3
    assert mask_value("token_expires_in", 7200) == 7200
    assert mask_value("password_set", True) is True
    assert mask_value("status", 200) == 200
    assert mask_value("row", {"phone": 13912345678, "age": 30}) == {"phone": "139****5678", "age": 30}
