"""In headless Chromium on a phone, against a real console server and the fake WeCom server: the staff
member opens the sidebar in a chat → WeCom OAuth → the JS-SDK finds the chat's customer → she ticks a
tag → sends a script (the fake records the sendChatMessage). Then the fake rotates its ticket, so
siyu's cached signature is wrong: the page retries once with fresh tickets and recovers; rotated again
within the minute, the refresh is refused and the page says the JS-SDK failed. Once per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.db import make_engine
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.sidebar import open_chat, sent_messages
from siyu.kit.clock import system_clock
from siyu.messaging.crypto import encrypt_credentials
from siyu.migrate import upgrade
from siyu.models import IdentityType, Script, WecomIntegration
from tests.browser import (
    BROWSER_MARKS,
    PHONE,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    new_context,
)
from tests.conftest import BACKENDS
from tests.factories import make_customer, make_relationship, make_staff, make_tag, make_workspace
from tests.web import console_server
from tests.web.console_server import seeded_console

pytestmark = BROWSER_MARKS
SECRET = "browser-secret"  # what tests.web.console_server signs and encrypts with


@dataclass
class Seeded:
    base_url: str
    corp_id: str
    workspace_id: int
    customer_id: int
    tag_id: int


def _seeder(fake: RunningFake, corp_id: str) -> Callable[[str], tuple[int, int, int]]:
    def seed(url: str) -> tuple[int, int, int]:
        corp = fake.fake.add_corp(corp_id, contact_secret="c-secret", app_secret="a-secret")
        corp.users["zhangli"] = {"userid": "zhangli", "name": "张丽", "department": [1], "status": 1}
        engine = make_engine(url)
        upgrade(engine)
        settings = Settings(database_url=url, secret_key=SECRET, log_json=False, broker_url=None)
        with Session(engine, expire_on_commit=False) as db:
            ws = make_workspace(db, clock=system_clock, name="花间集")
            now = system_clock.now()
            db.add(
                WecomIntegration(
                    workspace_id=ws.id,
                    corp_id=corp_id,
                    agent_id=corp.agent_id,
                    secrets_encrypted=encrypt_credentials(
                        {"contact_secret": "c-secret", "app_secret": "a-secret"}, settings=settings
                    ),
                    api_base_url=fake.api_base_url,
                    is_fake=True,
                    is_active=True,
                    created_at=now,
                    updated_at=now,
                )
            )
            staff = make_staff(db, workspace=ws, clock=system_clock, name="张丽", wecom_user_id="zhangli")
            customer = make_customer(
                db,
                actor=Actor.system(ws.id),
                clock=system_clock,
                name="王芳",
                identities=[(IdentityType.WECOM_EXTERNAL_USERID, "wmWangFang01")],
            ).customer
            make_relationship(db, customer=customer, staff=staff, added_at=now - timedelta(days=2))
            tag = make_tag(db, workspace=ws, name="高意向")
            db.add(
                Script(
                    workspace_id=ws.id,
                    stage="greeting",
                    title="问候",
                    body="{{ name }}您好",
                    created_at=now,
                    updated_at=now,
                )
            )
            db.commit()
            ids = (ws.id, customer.id, tag.id)
        engine.dispose()
        return ids

    return seed


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_wecom: RunningFake
) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-sidebar")
    corp_id = f"wwsidebar{request.param}"
    port = console_server.free_port()
    with pytest.MonkeyPatch.context() as patch:  # public_url must be the server's address (OAuth, JS-SDK)
        patch.setattr(console_server, "free_port", lambda: port)
        patch.setenv("SIYU_PUBLIC_URL", f"http://127.0.0.1:{port}")
        with seeded_console(request.param, folder, _seeder(fake_wecom, corp_id)) as (base_url, ids):
            ws_id, customer_id, tag_id = ids
            yield Seeded(base_url, corp_id, ws_id, customer_id, tag_id)


def test_staff_opens_the_sidebar_tags_the_customer_and_sends_a_script(
    browser: Browser, server: Seeded, fake_wecom: RunningFake
) -> None:
    open_chat(fake_wecom.fake, server.corp_id, userid="zhangli", external_userid="wmWangFang01")
    errors: list[str] = []
    context = new_context(
        browser, server.base_url, server_errors=errors, viewport=PHONE, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        script_errors: list[str] = []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.goto(f"/sidebar?ws={server.workspace_id}")
        page.wait_for_url("**/sidebar/c?eu=wmWangFang01**")
        expect(page.locator("#customer-name")).to_have_text("王芳")
        expect(page.locator("#sdk-status")).to_have_attribute("data-state", "ready")

        page.locator(f"input[name=tag_id][value='{server.tag_id}']").check()
        page.click("#save-tags")
        expect(page.locator("#notice")).to_have_text("标签已保存")
        expect(page.locator(f"input[name=tag_id][value='{server.tag_id}']")).to_be_checked()

        expect(page.locator("#sdk-status")).to_have_attribute("data-state", "ready")
        send = page.locator(".sb-send[data-kind=script]")
        send.click()
        expect(send).to_have_text("已发送")
        assert [m["message"] for m in sent_messages(fake_wecom.fake, server.corp_id)] == [
            {"msgtype": "text", "text": {"content": "王芳您好"}, "enterChat": False}
        ]

        with fake_wecom.fake.lock:  # WeCom issues a new ticket: siyu's cached one no longer verifies
            fake_wecom.fake.corp(server.corp_id).table("sidebar")["tickets"]["corp"]["ticket"] = "rotated"
        page.reload()  # the page retries with refresh=1: siyu fetches the new ticket
        expect(page.locator("#sdk-status")).to_have_attribute("data-state", "ready")
        expect(page.locator(".sb-send[data-kind=script]")).to_be_enabled()

        with fake_wecom.fake.lock:  # rotated again within the minute: no second refresh
            fake_wecom.fake.corp(server.corp_id).table("sidebar")["tickets"]["corp"]["ticket"] = "rotated-again"
        page.reload()
        expect(page.locator("#sdk-status")).to_have_attribute("data-state", "failed")
        expect(page.locator(".sb-send[data-kind=script]")).to_be_disabled()
        assert errors == [] and script_errors == []
    finally:
        context.close()
