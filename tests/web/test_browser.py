"""The console in a real headless Chromium against a real server, database file and job worker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import Role
from tests.browser import BROWSER_MARKS, launch_chromium, log_in, watched_page
from tests.factories import actor_for, make_customer, make_staff, make_user, make_workspace
from tests.web.console_server import console_server

PASSWORD = "correct-horse-1"
EMAIL = "admin@huajian.example"

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    survivor_id: int
    merged_id: int
    searched_id: int


def _seed(engine_url: str) -> tuple[int, int, int]:
    engine = make_engine(engine_url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.ADMIN, email=EMAIL, password=PASSWORD)
        actor = actor_for(ws)
        staff = make_staff(db, workspace=ws, clock=system_clock, name="小美")
        survivor = make_customer(
            db, actor=actor, clock=system_clock, phone="13800138000", name="林小姐", owner_staff_id=staff.id
        )
        merged = make_customer(
            db, actor=actor, clock=system_clock, identities=[("taobao", "tb_lin")], name="林", city="杭州"
        )
        searched = make_customer(db, actor=actor, clock=system_clock, phone="13700137000", name="周先生", city="上海")
        for n in range(8):
            make_customer(db, actor=actor, clock=system_clock, phone=f"1360013{n:04d}", name=f"客户{n}", city="苏州")
        db.commit()
        ids = survivor.customer.id, merged.customer.id, searched.customer.id
    engine.dispose()
    return ids


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'siyu.db'}"
    survivor_id, merged_id, searched_id = _seed(url)
    with console_server(url, folder / "data", run_worker=True) as base_url:
        yield Seeded(base_url, survivor_id, merged_id, searched_id)


@pytest.fixture(scope="module")
def page(server: Seeded) -> Iterator[Page]:
    with launch_chromium() as browser, watched_page(browser, server.base_url) as watched:
        page = watched.page
        page.on("dialog", lambda dialog: dialog.accept())
        log_in(page, server.base_url, EMAIL, PASSWORD)
        yield page


def test_login_lands_on_the_overview(page: Page) -> None:
    expect(page.locator("#workspace-name")).to_have_text("花间集")
    expect(page.locator('[data-kpi="pool"]')).to_have_text("11")
    expect(page.locator("#daily-chart canvas")).to_have_count(1)


def test_wrong_password_shows_the_form_again(page: Page, server: Seeded) -> None:
    browser = page.context.browser
    assert browser is not None
    context = browser.new_context(base_url=server.base_url)
    other = context.new_page()
    other.goto("/login")
    other.fill("#email", EMAIL)
    other.fill("#password", "not-the-password")
    other.click("button[type=submit]")
    expect(other.locator('[data-error="form"]')).to_have_text("邮箱或密码错误")
    context.close()


def test_search_by_phone_swaps_the_table(page: Page, server: Seeded) -> None:
    page.goto("/customers")
    expect(page.locator("#customers tbody tr")).to_have_count(11)
    page.screenshot(path="/tmp/siyu-customers.png", full_page=True)
    page.fill("#q", "137 0013 7000")
    page.press("#q", "Enter")
    rows = page.locator("#customers tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-customer-id", str(server.searched_id))
    expect(rows.first.locator(".phone")).to_have_text("13700137000")
    expect(page.locator("#filter-count")).to_have_text("1")


def test_import_with_one_bad_row_reports_it_on_the_job_page(page: Page, tmp_path: Path) -> None:
    csv_file = tmp_path / "会员名单.csv"
    csv_file.write_text(
        "姓名,手机号,城市\n郑女士,13500135000,成都\n吴先生,1234,重庆\n孙女士,13500135001,西安\n", encoding="utf-8"
    )
    page.goto("/imports")
    page.set_input_files("#file", str(csv_file))
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#detected-encoding")).to_have_text(re.compile("utf-8"))
    expect(page.locator('select[name="target_1"]')).to_have_value("phone")
    page.click("#start-import")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(page.locator('[data-count="created"]')).to_have_text("2")
    expect(page.locator('[data-count="rejected"]')).to_have_text("1")
    expect(page.locator("#rejections tbody tr")).to_have_count(1)
    expect(page.locator("#rejections tbody tr td.line")).to_have_text("3")


def test_merge_from_the_detail_page_then_undo(page: Page, server: Seeded) -> None:
    page.goto(f"/customers/{server.survivor_id}")
    expect(page.locator("#identity-count")).to_have_text("1")
    page.fill("#merged_id", str(server.merged_id))
    page.click("#merge-form button[type=submit]")
    expect(page.locator("#identity-count")).to_have_text("2")
    expect(page.locator('#identities [data-identity="taobao"] .identity-value')).to_have_text("tb_lin")
    expect(page.locator('#profile-form input[name="city"]')).to_have_value("杭州")
    page.goto(f"/customers/{server.merged_id}")
    expect(page.locator("#merged-banner")).to_be_visible()
    page.click(f'#merged-banner a[href="/customers/{server.survivor_id}"]')
    page.click("#merges button:has-text('撤销合并')")
    expect(page.locator("#identity-count")).to_have_text("1")
    expect(page.locator('#profile-form input[name="city"]')).to_have_value("")
    expect(page.locator("#customer-name")).to_have_text("林小姐")
    page.goto(f"/customers/{server.merged_id}")
    expect(page.locator("#merged-banner")).to_have_count(0)
    expect(page.locator("#identity-count")).to_have_text("1")
    expect(page.locator("#customer-name")).to_have_text("林")
    expect(page.locator('#profile-form input[name="city"]')).to_have_value("杭州")
