"""The loyalty console end to end in headless Chromium: an operator creates a tier and a reward,
adjusts a member's points with a reason, and ships the gift the member redeemed; every value on
screen is exact. Runs once per backend (SQLite file, and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points import ledger
from siyu.loyalty.rewards.service import redeem
from siyu.loyalty.tiers.catalogue import create_tier
from siyu.loyalty.tiers.schemas import TierIn
from siyu.migrate import upgrade
from siyu.models import PointsReason, Reward, Role
from tests.browser import (
    BROWSER_MARKS,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import actor_for, make_customer, make_user, make_workspace
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "ops@huajian.example"
ADDRESS = {"name": "王芳", "phone": "13800138000", "address": "上海市静安区南京西路 1 号"}

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    url: str
    workspace_id: int
    customer_id: int


def _seed(url: str) -> tuple[str, int, int]:
    """An operator, the base tier 普通, and 王芳 with 500 points."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        actor = actor_for(ws)
        create_tier(db, actor=actor, data=TierIn(name="普通", rank=0), clock=system_clock)
        customer = make_customer(db, actor=actor, clock=system_clock, name="王芳", phone="13800138000").customer
        member = ensure_member(db, workspace_id=ws.id, customer_id=customer.id, clock=system_clock)
        ledger.earn(
            db,
            member=member,
            points=500,
            reason=PointsReason.MANUAL,
            description="开卡礼",
            idempotency_key="welcome",
            clock=system_clock,
        )
        db.commit()
        seeded = (url, ws.id, customer.id)
    engine.dispose()
    return seeded


def _member_redeems(url: str, workspace_id: int, customer_id: int, reward_name: str) -> None:
    """What the member's H5 page does: redeem the gift with an address."""
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            reward = db.scalars(select(Reward).where(Reward.name == reward_name)).one()
            redeem(
                db,
                workspace_id=workspace_id,
                customer_id=customer_id,
                reward_id=reward.id,
                idempotency_key="h5-1",
                address=ADDRESS,
                clock=system_clock,
            )
            db.commit()
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-loyalty")
    with seeded_console(request.param, folder, _seed) as (base_url, (url, workspace_id, customer_id)):
        yield Seeded(base_url, url, workspace_id, customer_id)


@pytest.fixture
def operator(browser: Browser, server: Seeded) -> Iterator[tuple[Page, list[str]]]:
    """The operator's desktop browser, signed in, and every 5xx any page received."""
    with watched_page(browser, server.base_url) as watched:
        log_in(watched.page, server.base_url, EMAIL, PASSWORD)
        yield watched.page, watched.server_errors


def test_tier_reward_adjustment_and_shipping(operator: tuple[Page, list[str]], server: Seeded) -> None:
    page, server_errors = operator
    # given the operator creates the tier 尊享 at 5,000 yuan of spend with 1.5× points
    page.goto("/loyalty/tiers")
    page.click("#new-tier")
    page.wait_for_url(re.compile(r"/loyalty/tiers/new$"))
    page.fill("#f-name", "尊享")
    page.fill("#f-rank", "1")
    page.fill("#f-threshold", "5000")
    page.fill("#f-points_multiplier_pct", "150")
    page.check("#f-free_shipping")
    page.click("#save")
    page.wait_for_url(re.compile(r"/loyalty/tiers$"))
    expect(page.get_by_role("alert")).to_have_text("会员等级已保存: 尊享")
    row = page.locator('[data-tier="尊享"]')
    expect(row.locator(".threshold")).to_have_text("¥5,000.00")
    expect(row).to_contain_text("1.50×")
    expect(row).to_contain_text("包邮")

    # and a gift of 200 points with 10 in stock
    page.goto("/loyalty/rewards")
    page.click("#new-reward")
    page.wait_for_url(re.compile(r"/loyalty/rewards/new$"))
    page.fill("#f-name", "帆布包")
    page.select_option("#f-kind", "gift")
    page.fill("#f-points_price", "200")
    page.fill("#f-stock", "10")
    page.click("#save")
    page.wait_for_url(re.compile(r"/loyalty/rewards$"))
    gift = page.locator('[data-reward="帆布包"]')
    expect(gift.locator(".points-price")).to_have_text("200")
    expect(gift.locator(".stock")).to_have_text("10")

    # when they give 王芳 120 points for a complaint
    page.goto("/loyalty/points?q=王芳")
    page.click(f'[data-customer="{server.customer_id}"] >> text=积分明细')
    expect(page.locator("#balance")).to_have_text("500")
    page.fill("#adjust-points", "120")
    page.fill("#adjust-reason", "客诉补偿")
    page.click("#adjust-submit")
    # then the balance is 620 and the ledger says why
    expect(page.get_by_role("alert")).to_have_text("积分已调整: +120 → 620")
    expect(page.locator("#balance")).to_have_text("620")
    first = page.locator("#ledger tbody tr").first
    expect(first.locator(".description")).to_have_text("客诉补偿")
    expect(first.locator(".points-amount")).to_have_text("+120")

    # when 王芳 redeems the gift on her H5 page, then it waits for shipment and her balance is 420
    _member_redeems(server.url, server.workspace_id, server.customer_id, "帆布包")
    page.reload()
    expect(page.locator("#balance")).to_have_text("420")
    page.goto("/loyalty/redemptions")
    expect(page.locator('[data-count="awaiting_shipment"]')).to_have_text("1")
    queued = page.locator("#redemptions tbody tr").first
    expect(queued).to_contain_text("帆布包")
    expect(queued).to_contain_text("上海市静安区南京西路 1 号")

    # when the operator ships it with tracking number SF1234567890
    queued.locator("input[name=tracking_no]").fill("SF1234567890")
    queued.locator(".ship-form button").click()
    # then it moved to shipped with its number, and the stock shows 9
    expect(page.get_by_role("alert")).to_have_text("已发货: SF1234567890")
    expect(page.locator('[data-count="awaiting_shipment"]')).to_have_text("0")
    expect(page.locator('[data-count="shipped"]')).to_have_text("1")
    page.goto("/loyalty/redemptions?status=shipped")
    expect(page.locator("#redemptions .tracking-no")).to_have_text("SF1234567890")
    page.goto("/loyalty/rewards")
    expect(page.locator('[data-reward="帆布包"] .stock')).to_have_text("9")

    # and the customer page's member panel shows the same balance
    page.goto(f"/customers/{server.customer_id}")
    expect(page.locator("#member-balance")).to_have_text("420")
    assert server_errors == []
