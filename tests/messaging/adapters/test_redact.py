"""`redact`: credential values never reach delivery errors, check errors or logs."""

from __future__ import annotations

import pytest

from siyu.messaging.adapters.base import callback_id, clean_text, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
            "/cgi-bin/gettoken?corpid=ww1&corpsecret=s3cr3t (Caused by NewConnectionError(...))",
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
            "/cgi-bin/gettoken?corpid=ww1&corpsecret=*** (Caused by NewConnectionError(...))",
        ),
        (
            "ConnectionError(MaxRetryError('url: /cgi-bin/x?access_token=TOK\\'&debug=1'))",
            "ConnectionError(MaxRetryError('url: /cgi-bin/x?access_token=***'&debug=1'))",
        ),
        (
            "?AccessKeyId=LTAI5&Signature=abc%2B&SignatureMethod=HMAC-SHA1&AccessKeySecret=sk&SecretKey=tk",
            "?AccessKeyId=LTAI5&Signature=***&SignatureMethod=HMAC-SHA1&AccessKeySecret=***&SecretKey=***",
        ),
        (
            "secret=a password=b token=c key=d x-acs-signature=e",
            "secret=*** password=*** token=*** key=*** x-acs-signature=***",
        ),
        (
            '{"access_key_secret": "sk\\"x", "Token": 12345, "SecretId": "AKID", "keyword": "ok"}',
            '{"access_key_secret": "***", "Token": "***", "SecretId": "AKID", "keyword": "ok"}',
        ),
        ("{'secret': 'abc', 'callback_token': 'cb'}", "{'secret': \"***\", 'callback_token': \"***\"}"),
        ("monkey=1 keyword=2 tokens=3 sign_name=星河", "monkey=1 keyword=2 tokens=3 sign_name=星河"),
    ],
)
def test_credential_values_become_stars(text: str, expected: str) -> None:
    # given an error text / when it is redacted / then only credential values changed
    assert redact(text) == expected


def test_callback_values_are_cleaned_for_the_database() -> None:
    # given values a hostile status callback may carry
    # when they are read as ids and texts
    # then ids that cannot be ours are None, texts lose NULs and lone surrogates
    assert [callback_id(v) for v in ("1001^0", 42, True, None, [], {}, "", "a\x00b", "\ud800", "x" * 101)] == [
        "1001^0",
        "42",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    assert clean_text("空\x00号\ud800", 500) == "空号?"
    assert clean_text("x" * 600) == "x" * 500
