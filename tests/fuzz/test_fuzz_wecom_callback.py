"""Fuzzing the WeCom callback endpoint through the real route: random decrypted XML (valid
envelopes with random fields, malformed documents, entity declarations — billion laughs, external
entities — huge and unicode text) encrypted and signed with wechatpy's crypto as WeCom does, and
random outer bodies and verification queries. Every request is answered 200 "success" (or the
echostr), 400, 403 or 413 — never a 5xx — and a refused push stores nothing.

Entity declarations are refused by the parser (xmltodict ≥ 0.13 forbids them by default), so an
entity is never expanded: the stored payload of an accepted push never holds expanded text.
Both backends: an accepted push is written to the database (PostgreSQL refuses what SQLite takes).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import WeChatCrypto

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.callbacks.service import MAX_BODY_BYTES
from siyu.kit.clock import FrozenClock
from siyu.messaging.crypto import encrypt_credentials
from siyu.models import IntegrationEvent, WecomIntegration
from tests.factories import make_workspace
from tests.fuzz.conftest import fuzz_examples
from tests.integrations.wecom.helpers import aes_key

PATH = "/integrations/wecom/callback"
FUZZ = settings(
    max_examples=fuzz_examples(15),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
LAUGHS = (
    '<!DOCTYPE xml [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]>"
)
EXTERNAL = '<!DOCTYPE xml [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
PARAMETER = '<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>'


@dataclass
class Corp:
    """The workspace's WeCom credentials, as WeCom itself holds them to sign and encrypt pushes."""

    workspace_id: int
    corp_id: str
    token: str
    aes_key: str

    def encrypt(self, xml: str) -> tuple[dict[str, str], bytes]:
        """(query, body) of a push of `xml` the way WeCom sends it (signed now)."""
        crypto = WeChatCrypto(self.token, self.aes_key, self.corp_id)
        nonce, timestamp = secrets.token_hex(8), str(int(time.time()))
        reply = crypto.encrypt_message(xml, nonce, timestamp)
        encrypted = reply.split("<Encrypt><![CDATA[")[1].split("]]></Encrypt>")[0]
        signature = _get_signature(self.token, timestamp, nonce, encrypted)
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
        )
        query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce, "ws": str(self.workspace_id)}
        return query, body.encode()


@pytest.fixture
def corp(db: Session, clock: FrozenClock, database: Database) -> Corp:
    """A workspace with an active integration (`database` first: secrets are sealed with its key)."""
    ws = make_workspace(db, clock=clock)
    corp = Corp(workspace_id=ws.id, corp_id=f"wwfuzz{ws.id}", token=f"tok{ws.id}", aes_key=aes_key())
    db.add(
        WecomIntegration(
            workspace_id=ws.id,
            corp_id=corp.corp_id,
            agent_id="1000002",
            secrets_encrypted=encrypt_credentials(
                {
                    "contact_secret": "c",
                    "app_secret": "a",
                    "callback_token": corp.token,
                    "callback_aes_key": corp.aes_key,
                }
            ),
            api_base_url="http://127.0.0.1:9",  # never called: no generated push takes the welcome fast path
            is_fake=True,
            is_active=True,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    db.commit()
    return corp


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False, run_scheduler=False)
    with TestClient(app) as c:  # an unhandled exception in the app fails the test, as it should
        yield c


def _stored(db: Session, workspace_id: int) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).where(IntegrationEvent.workspace_id == workspace_id)) or 0


NAMES = st.sampled_from(
    ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "ChangeType", "UserID", "ExternalUserID"]
) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=40),  # characters XML allows
    st.sampled_from(["", "]]>", "<b>x</b>", "&amp;", "&lol9;", "😀𠀀", "\u200b\ufeff", "add_external_contact"]),
    st.integers(min_value=1, max_value=4000).map(lambda n: "长" * n),
)


@st.composite
def well_formed(draw: st.DrawFn) -> str:
    """An `<xml>` document with random fields (text escaped or in CDATA, some nested)."""
    parts = []
    for name in draw(st.lists(NAMES, max_size=8)):
        text = draw(TEXT)
        if draw(st.booleans()) and "]]>" not in text:
            parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
        elif draw(st.booleans()):
            parts.append(f"<{name}><Item>{escape(text)}</Item><Item/></{name}>")
        else:
            parts.append(f"<{name}>{escape(text)}</{name}>")
    root = draw(st.sampled_from(["xml", "xml", "xml", "root"]))
    return f"<{root}>{''.join(parts)}</{root}>"


DECRYPTED = st.one_of(
    well_formed(),
    well_formed(),
    st.builds(
        lambda dtd, doc: dtd + doc.replace("</xml>", "<Event>&lol9;</Event></xml>"), st.just(LAUGHS), well_formed()
    ),
    st.builds(lambda doc: EXTERNAL + doc.replace("</xml>", "<Event>&ext;</Event></xml>"), well_formed()),
    st.builds(lambda doc: PARAMETER + doc, well_formed()),
    st.builds(lambda doc, cut: doc[:cut], well_formed(), st.integers(min_value=0, max_value=30)),  # truncated
    st.text(max_size=200),
)


@FUZZ
@given(xml=DECRYPTED)
def test_any_decrypted_push_is_accepted_or_refused_never_a_server_error(
    db: Session, corp: Corp, client: TestClient, xml: str
) -> None:
    note(repr(xml))
    before = _stored(db, corp.workspace_id)
    query, body = corp.encrypt(xml)
    answer = client.post(PATH, params=query, content=body)
    event(f"status {answer.status_code}: {answer.text[:50]}")
    stored = _stored(db, corp.workspace_id) - before
    if answer.status_code == 200:
        assert answer.text == "success"
        assert stored in (0, 1)  # 0: a retry of an identical push
        assert "<!DOCTYPE" not in xml  # a document declaring entities is never accepted
    else:
        assert (answer.status_code, stored) in ((400, 0), (413, 0)), answer.text


ENVELOPES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.builds(lambda doc: (LAUGHS + doc.replace("</xml>", "<Encrypt>&lol9;</Encrypt></xml>")).encode(), well_formed()),
    st.builds(lambda doc: (EXTERNAL + doc.replace("</xml>", "<Encrypt>&ext;</Encrypt></xml>")).encode(), well_formed()),
    st.builds(lambda doc: doc.encode(), well_formed()),
    st.builds(lambda enc: f"<xml><Encrypt><![CDATA[{enc}]]></Encrypt></xml>".encode(), st.text(max_size=100)),
    st.sampled_from([b"x" * (MAX_BODY_BYTES + 1), b"<xml><Encrypt>" + b"A" * MAX_BODY_BYTES + b"</Encrypt></xml>"]),
)
QUERIES = st.dictionaries(
    st.sampled_from(["msg_signature", "timestamp", "nonce", "ws", "echostr"]),
    st.text(max_size=30) | st.sampled_from(["", "1", "-1", "99999999999999999999", "١٢", str(int(time.time()))]),
    max_size=5,
)


@FUZZ
@given(body=ENVELOPES, query=QUERIES)
def test_any_outer_body_and_query_are_refused_never_a_server_error(
    db: Session, corp: Corp, client: TestClient, body: bytes, query: dict[str, str]
) -> None:
    # given a push whose envelope or signature WeCom did not make
    before = _stored(db, corp.workspace_id)
    # when it is posted, and the query is also tried as a URL verification
    posted = client.post(PATH, params=query, content=body)
    verified = client.get(PATH, params=query)
    # then both are refused with a 4xx and nothing is stored
    event(f"post {posted.status_code}, get {verified.status_code}")
    assert posted.status_code in (400, 403, 413), posted.text
    assert verified.status_code in (400, 403), verified.text
    assert _stored(db, corp.workspace_id) == before
