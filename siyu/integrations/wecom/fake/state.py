"""The fake server's state: corps with their members, external contacts and friend edges, plus a
free-form table per area (`corp.table("contact_ways")`). Thread-safe through one re-entrant lock;
saved to and loaded from JSON for the demo."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_TTL_S = 7200


class FakeError(Exception):
    """Raised by a fake endpoint: answered as `{"errcode": code, "errmsg": message}` with HTTP 200,
    as WeCom does."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class FakeCorp:
    corp_id: str
    contact_secret: str
    app_secret: str
    agent_id: str = "1000002"
    callback_url: str | None = None
    """siyu's callback URL; events are pushed here (None: events are only recorded in `pushed`)."""
    callback_token: str = ""
    callback_aes_key: str = ""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Members by userid: {"userid", "name", "department": [ids], "status": 1 active/5 quit, "mobile"?}."""
    departments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By id (as a string): {"id", "name", "parentid"}."""
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """External contacts by external_userid: {"external_userid", "name", "type": 1, "gender", "avatar", "unionid"?}."""
    follows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Friend edges keyed "external_userid|userid": {"userid", "remark", "description", "createtime",
    "tags": [{"tag_id"...}], "state", "add_way", "oper_userid", "remark_mobiles": []}."""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-area state: `table(name)` creates it on first use."""
    tokens: dict[str, float] = field(default_factory=dict)
    """Issued access tokens → expiry (epoch seconds)."""
    failures: dict[str, list[int]] = field(default_factory=dict)
    """Scripted errors: the next calls of an API answer these errcodes, one per call."""
    limits: dict[str, int] = field(default_factory=dict)
    """Per-minute call limits by API (beyond: 45009); unset APIs follow WeCom's 10,000 a minute."""
    calls: list[tuple[str, float]] = field(default_factory=list)
    """(api, time) of every authenticated call, for tests and for the limit."""
    pushed: list[dict[str, Any]] = field(default_factory=list)
    """Every event pushed (or meant to be pushed) to siyu, with siyu's HTTP status."""
    seq: int = 0
    clock: Callable[[], float] = field(default=time.time, repr=False)
    """The corp's idea of now (epoch seconds): WeCom's timestamps (create times, expiries, the
    per-minute limit). Tests point it at their frozen clock so siyu and the fake agree."""
    transport: Callable[[dict[str, str], bytes], int] | None = field(default=None, repr=False)
    """Deliver a push in-process instead of over HTTP: `(query params, body) -> HTTP status`
    (tests point it at a TestClient)."""

    def now(self) -> float:
        """Now, by this corp's clock (see `clock`)."""
        return self.clock()

    def table(self, name: str) -> dict[str, Any]:
        return self.tables.setdefault(name, {})

    def next_id(self, prefix: str = "") -> str:
        self.seq += 1
        return f"{prefix}{self.seq:06d}{secrets.token_hex(3)}"

    def follow(self, external_userid: str, userid: str) -> dict[str, Any] | None:
        return self.follows.get(f"{external_userid}|{userid}")

    def follows_of_contact(self, external_userid: str) -> list[dict[str, Any]]:
        return [f for k, f in self.follows.items() if k.split("|", 1)[0] == external_userid]

    def contacts_of_user(self, userid: str) -> list[str]:
        return [k.split("|", 1)[0] for k, f in self.follows.items() if f["userid"] == userid]

    def fail_next(self, api: str, errcode: int, times: int = 1) -> None:
        """Script the next `times` calls of `api` to answer `errcode`."""
        self.failures.setdefault(api, []).extend([errcode] * times)

    def issue_token(self) -> str:
        token = "fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = self.now() + TOKEN_TTL_S
        return token

    def expire_tokens(self) -> None:
        """Every issued token expires now (the next call answers 42001)."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    def calls_of(self, api: str) -> int:
        return sum(1 for name, _ in self.calls if name == api)


@dataclass
class FakeWecom:
    """Every corp (and official account, in `accounts`) the fake server hosts."""

    corps: dict[str, FakeCorp] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """WeChat official accounts by appid (see `fake.official`)."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def add_corp(
        self,
        corp_id: str,
        *,
        contact_secret: str,
        app_secret: str = "",
        agent_id: str = "1000002",
        callback_url: str | None = None,
        callback_token: str = "",
        callback_aes_key: str = "",
    ) -> FakeCorp:
        with self.lock:
            corp = FakeCorp(
                corp_id=corp_id,
                contact_secret=contact_secret,
                app_secret=app_secret or contact_secret + "-app",
                agent_id=agent_id,
                callback_url=callback_url,
                callback_token=callback_token,
                callback_aes_key=callback_aes_key,
            )
            self.corps[corp_id] = corp
            return corp

    def corp(self, corp_id: str) -> FakeCorp:
        corp = self.corps.get(corp_id)
        if corp is None:
            raise FakeError(40013, "invalid corpid")
        return corp

    def corp_by_token(self, token: str | None) -> FakeCorp:
        """The corp an access token belongs to: 40014 for an unknown token, 42001 for an expired one."""
        if not token:
            raise FakeError(41001, "access_token missing")
        for corp in self.corps.values():
            expires = corp.tokens.get(token)
            if expires is not None:
                if expires <= corp.now():
                    raise FakeError(42001, "access_token expired")
                return corp
        raise FakeError(40014, "invalid access_token")

    @contextmanager
    def locked(self) -> Iterator[FakeWecom]:
        with self.lock:
            yield self

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "corps": {
                    cid: {
                        k: v
                        for k, v in corp.__dict__.items()
                        if k not in ("tokens", "calls", "failures", "pushed", "transport", "clock")
                    }
                    for cid, corp in self.corps.items()
                },
                "accounts": self.accounts,
            }

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FakeWecom:
        fake = cls()
        if path.exists():
            data = json.loads(path.read_text())
            for cid, values in data.get("corps", {}).items():
                fake.corps[cid] = FakeCorp(**values)
            fake.accounts = data.get("accounts", {})
        return fake
