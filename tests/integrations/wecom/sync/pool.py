"""Test helpers: customers and friend edges on the fake corp."""

from __future__ import annotations

from datetime import UTC, datetime

from siyu.integrations.wecom.fake.state import FakeCorp

ADDED = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def befriend(
    corp: FakeCorp, ext: str, userid: str, *, name: str = "客户", at: datetime = ADDED, **extra: object
) -> None:
    """`ext` (a customer named `name`) is a friend of member `userid` on the fake corp since `at`."""
    corp.contacts[ext] = {"external_userid": ext, "name": name, "type": 1, **extra}
    corp.follows[f"{ext}|{userid}"] = {"userid": userid, "createtime": int(at.timestamp()), "tags": []}
