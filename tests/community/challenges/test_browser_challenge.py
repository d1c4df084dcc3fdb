"""In headless Chromium on a phone: a member opens her link, joins a challenge, checks in with
text and an image, sees her post (image loaded) in the challenge and the topic feed, and herself
on the leaderboard with 1 day; markup she typed stays text. Once per backend."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from PIL import Image
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from siyu.community.challenges import service
from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.loyalty.h5.links import member_link_token
from siyu.migrate import upgrade
from tests.browser import (
    BROWSER_MARKS,
    PHONE,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    new_context,
)
from tests.community.challenges.factories import make_challenge, make_person
from tests.conftest import BACKENDS
from tests.factories import make_workspace
from tests.web.console_server import seeded_console

SECRET = "browser-secret"  # what tests.web.console_server signs with

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    link: str
    challenge_id: int


def _seed(url: str) -> tuple[str, int]:
    """花间集 with a published 3-day challenge open today (brand time), 10 points a day; 王芳."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        today = service.today_for(db, ws.id, system_clock)
        challenge = make_challenge(
            db, workspace=ws, clock=system_clock, starts_on=today - timedelta(days=1), ends_on=today + timedelta(days=5)
        )
        member = make_person(db, workspace=ws, clock=system_clock, name="王芳")
        db.commit()
        ws_id, customer_id, challenge_id = ws.id, member.id, challenge.id
    engine.dispose()
    token = member_link_token(
        workspace_id=ws_id, customer_id=customer_id, secret=SECRET, clock=system_clock, purpose="challenges"
    )
    return f"/m/enter?t={token}", challenge_id


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-challenges")
    with seeded_console(request.param, folder, _seed) as (base_url, (link, challenge_id)):
        yield Seeded(base_url, link, challenge_id)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), "#2fb344").save(out, "PNG")
    return out.getvalue()


def test_member_joins_checks_in_with_an_image_and_sees_it(browser: Browser, server: Seeded) -> None:
    errors: list[str] = []
    context = new_context(
        browser, server.base_url, server_errors=errors, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    # given 王芳 opens her link: it lands on the challenges
    page.goto(server.link)
    expect(page.locator("h1")).to_have_text("打卡挑战")
    page.get_by_test_id("challenge").first.click()
    # when she joins and checks in with text and an image
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("progress")).to_have_text("已打卡 0/3 天")
    page.fill("#body", "燕麦+鸡蛋 <b>不是粗体</b>")
    page.set_input_files("#images", files=[{"name": "早餐.png", "mimeType": "image/png", "buffer": _png()}])
    page.get_by_test_id("check-in").click()
    # then she sees the success, one day done, her post with the image loaded, and the leaderboard
    expect(page.get_by_test_id("checked-in")).to_have_text("打卡成功")
    expect(page.get_by_test_id("progress")).to_have_text("已打卡 1/3 天")
    expect(page.get_by_test_id("post-body")).to_have_text("燕麦+鸡蛋 <b>不是粗体</b>")
    image = page.get_by_test_id("post-image")
    expect(image).to_have_count(1)
    page.wait_for_function("document.querySelector('[data-testid=post-image]').naturalWidth === 120")
    expect(page.get_by_test_id("board-row")).to_have_text(["王芳 · 1 天"])
    expect(page.get_by_test_id("checked-today")).to_be_visible()
    # and the topic feed shows the post
    page.goto("/m/feed?topic=早餐打卡")
    expect(page.get_by_test_id("post-author")).to_have_text(["王芳"])
    expect(page.get_by_test_id("post-body")).to_have_text(["燕麦+鸡蛋 <b>不是粗体</b>"])
    assert errors == []
    context.close()
