"""The segment builder end to end in headless Chromium: an operator builds "VIP and (in 上海) and
viewed a page in the last 30 days" condition by condition, watching the live count and the count of
every node, makes a mistake and sees it pointed at, fixes it, saves, and lands on the detail page
with the exact size and members. Runs once per backend (SQLite file, and PostgreSQL when set)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import Role, Segment, TagGroup
from tests.browser import (
    BROWSER_MARKS,
    Watched,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import make_customer, make_tag, make_user, make_workspace
from tests.segments.factories import make_event, tag_customer
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "operator@huajian.example"
SCREENSHOT = Path("/tmp/segments-builder.png")

pytestmark = BROWSER_MARKS

# name, city, VIP?, viewed a page yesterday?
PEOPLE = [
    ("王一", "上海", True, True),
    ("李二", "上海", True, False),
    ("张三", "杭州", True, True),
    ("赵四", "北京", True, False),
    ("钱五", "上海", False, True),
    ("孙六", "上海", True, True),
]
# VIP: 王一 李二 张三 赵四 孙六 (5); in 上海: 王一 李二 钱五 孙六 (4); viewed: 王一 张三 钱五 孙六 (4)


@dataclass
class Seeded:
    base_url: str
    url: str
    vip_id: int
    ids: dict[str, int]


def _seed(url: str) -> Seeded:
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        group = TagGroup(workspace_id=ws.id, name="会员")
        db.add(group)
        db.flush()
        vip = make_tag(db, workspace=ws, name="VIP", group=group)
        make_tag(db, workspace=ws, name="新品关注", group=group)
        actor = Actor.system(ws.id)
        ids = {}
        for name, city, is_vip, viewed in PEOPLE:
            customer = make_customer(db, actor=actor, clock=system_clock, name=name, city=city).customer
            if is_vip:
                tag_customer(db, customer=customer, tag=vip, at=system_clock.now())
            if viewed:
                when = system_clock.now() - timedelta(days=1)
                make_event(db, customer=customer, type="page.view", occurred_at=when, properties={"path": "/p/1"})
            ids[name] = customer.id
        db.commit()
        seeded = Seeded(base_url="", url=url, vip_id=vip.id, ids=ids)
    engine.dispose()
    return seeded


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-segments")
    with seeded_console(request.param, folder, _seed) as (base_url, seeded):
        seeded.base_url = base_url
        yield seeded


@pytest.fixture
def operator(browser: Browser, server: Seeded) -> Iterator[Watched]:
    """The operator's desktop browser, signed in; every 5xx and every script error is collected."""
    with watched_page(browser, server.base_url, viewport={"width": 1440, "height": 1000}) as watched:
        log_in(watched.page, server.base_url, EMAIL, PASSWORD)
        yield watched


def node(page: Page, path: str) -> str:
    """CSS for the builder node at `path` (e.g. "$.all[1].any[0]")."""
    return f'[data-path="{path}"]'


def count_of(page: Page, path: str) -> Locator:
    """The count badge of a node (its own, not those of nested nodes)."""
    return page.locator(f"{node(page, path)} > .seg-head .seg-count, {node(page, path)} > .seg-side .seg-count")


def test_build_preview_fix_and_save_a_segment(operator: Watched, server: Seeded) -> None:
    page = operator.page
    # given the builder of a new segment, reached from the list
    page.goto("/segments")
    page.click("#new-segment")
    page.wait_for_url(re.compile(r"/segments/new$"))
    page.fill("#name", "沪上活跃 VIP")
    expect(page.locator(node(page, "$"))).to_be_visible()
    expect(page.locator("#preview-sample")).to_be_empty()
    # when a tag condition is added and the VIP tag picked
    page.select_option(f'{node(page, "$")} > .seg-head select[data-role="add-condition"]', "tag")
    expect(page.locator(node(page, "$.all[0]"))).to_have_attribute("data-kind", "tag")
    page.select_option(f'{node(page, "$.all[0]")} select[data-key="tag_ids"]', label="VIP")
    # then the live count is the five VIPs, and the tag shows as a chip
    expect(page.locator("#live-count")).to_have_text("5")
    expect(page.locator(f"{node(page, '$.all[0]')} .seg-chip")).to_have_text("VIP")
    expect(page.locator("#preview-sample li")).to_have_count(5)

    # when a nested "any" group with "city equals 上海" is added
    page.click(f'{node(page, "$")} > .seg-head [data-role="add-group"]')
    expect(page.locator(f'{node(page, "$.all[1]")} > .seg-head select[data-key="combinator"]')).to_have_value("any")
    page.select_option(f'{node(page, "$.all[1]")} > .seg-head select[data-role="add-condition"]', "field")
    condition = node(page, "$.all[1].any[0]")
    page.select_option(f'{condition} select[data-key="field"]', "city")
    expect(page.locator(f'{condition} select[data-key="op"]')).to_have_value("eq")
    page.fill(f'{condition} input[data-key="value"]', "上海")
    # then the count is the VIPs in 上海, and every node shows its own count
    expect(page.locator("#live-count")).to_have_text("3")
    expect(count_of(page, "$")).to_have_text("3 人")
    expect(count_of(page, "$.all[0]")).to_have_text("5 人")
    expect(count_of(page, "$.all[1]")).to_have_text("4 人")
    expect(count_of(page, "$.all[1].any[0]")).to_have_text("4 人")
    ids = server.ids
    sample = page.locator("#preview-sample li")
    expect(sample).to_have_count(3)
    assert [int(v) for v in sample.evaluate_all("els => els.map(e => e.dataset.customerId)")] == [
        ids["孙六"],
        ids["李二"],
        ids["王一"],
    ]

    # when an event condition is added (viewed a page in the last 30 days) and given a negative count
    page.select_option(f'{node(page, "$")} > .seg-head select[data-role="add-condition"]', "event")
    event = node(page, "$.all[2]")
    expect(page.locator(f'{event} input[data-key="type"]')).to_have_value("page.view")
    expect(page.locator("#live-count")).to_have_text("2")
    page.fill(f'{event} input[data-key="value"]', "-1")
    # then the error is shown on that node and its field, the count is withdrawn, nothing crashed
    expect(page.locator("#preview-error")).to_have_text("$.all[2].value: an event count is a whole number ≥ 0")
    expect(page.locator(event)).to_have_class(re.compile(r"\bseg-error\b"))
    expect(page.locator(f'{event} input[data-key="value"]')).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.locator(f"{event} .seg-error-msg")).to_have_text("$.all[2].value: an event count is a whole number ≥ 0")
    expect(page.locator("#live-count")).to_have_text("—")
    expect(page.locator(".seg-error")).to_have_count(1)
    # when it is fixed
    page.fill(f'{event} input[data-key="value"]', "1")
    # then the count comes back: VIPs in 上海 who viewed a page, and the error is gone
    expect(page.locator("#live-count")).to_have_text("2")
    expect(page.locator("#preview-error")).to_be_hidden()
    expect(page.locator(".seg-error")).to_have_count(0)
    expect(count_of(page, "$.all[2]")).to_have_text("4 人")
    page.locator("#preview-sql summary").click()
    expect(page.locator("#preview-sql-text")).to_contain_text("SELECT customers.id")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # when it is saved
    page.click("#save-segment")
    page.wait_for_url(re.compile(r"/segments/\d+$"))
    # then the detail page shows the exact size, the conditions in words and the two members
    expect(page.get_by_role("alert")).to_have_text("人群已保存")
    expect(page.locator("h2.page-title")).to_contain_text("沪上活跃 VIP")
    expect(page.locator("#segment-size")).to_have_text("2")
    rows = page.locator("#member-table tbody tr")
    expect(rows).to_have_count(2)
    assert [int(v) for v in rows.evaluate_all("els => els.map(e => e.dataset.customerId)")] == [
        ids["孙六"],
        ids["王一"],
    ]
    expect(page.locator("#definition-summary .seg-summary-condition")).to_have_text(
        [
            "标签 · 包含任一标签: VIP",
            "客户属性 · 城市 等于 上海",
            "行为事件 · page.view，最近 30 天，发生次数 至少 1 次",
        ]
    )
    # and the stored definition is exactly what was built
    segment_id = int(page.url.rsplit("/", 1)[1])
    engine = make_engine(server.url)
    with Session(engine) as db:
        segment = db.scalars(select(Segment).where(Segment.id == segment_id)).one()
        assert (segment.name, segment.version) == ("沪上活跃 VIP", 1)
        assert segment.definition == {
            "all": [
                {"kind": "tag", "match": "any", "tag_ids": [server.vip_id]},
                {"any": [{"kind": "field", "field": "city", "op": "eq", "value": "上海"}]},
                {
                    "kind": "event",
                    "type": "page.view",
                    "measure": "count",
                    "op": "at_least",
                    "value": 1,
                    "window": {"last_days": 30},
                },
            ]
        }
    engine.dispose()
    # and the edit page rebuilds the same tree with the same counts
    page.click("#edit-segment")
    page.wait_for_url(re.compile(r"/segments/\d+/edit$"))
    expect(page.locator("#live-count")).to_have_text("2")
    expect(page.locator(f"{node(page, '$.all[2]')}")).to_have_attribute("data-kind", "event")
    expect(count_of(page, "$.all[1].any[0]")).to_have_text("4 人")
    expect(page.locator(f"{node(page, '$.all[0]')} .seg-chip")).to_have_text("VIP")
    assert operator.server_errors == []
    assert operator.script_errors == []


def test_every_condition_kind_can_be_added_negated_and_removed(operator: Watched, tmp_path: Path) -> None:
    page = operator.page
    page.goto("/segments/new")
    root = node(page, "$")
    expect(page.locator(root)).to_be_visible()
    kinds = page.locator(f'{root} > .seg-head select[data-role="add-condition"] option').evaluate_all(
        "els => els.map(e => e.value).filter(Boolean)"
    )
    assert kinds == [
        "field",
        "identity",
        "tag",
        "relationship",
        "event",
        "order",
        "purchase",
        "consent",
        "segment",
        "sample",
        "tier",
        "points_balance",
        "points_expiring",
        "coupon",
        "first_order",
        "repurchaser",
        "super_user",
        "clv_value",
    ]
    # when one condition of every kind is added
    for index, kind in enumerate(kinds):
        page.select_option(f'{root} > .seg-head select[data-role="add-condition"]', kind)
        expect(page.locator(node(page, f"$.all[{index}]"))).to_have_attribute("data-kind", kind)
    # then the preview answers: a count, or an error on one node (an empty tag list, no SKU…)
    expect(page.locator("#live-meta")).not_to_have_text("计算中…")
    expect(page.locator("#preview-error")).to_contain_text("$.all[")
    expect(page.locator(".seg-error")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "every-kind.png"), full_page=True)
    # when the first is negated, the negation shows as a group, and is undone again
    page.click(f'{node(page, "$.all[0]")} > .seg-side [data-role="negate"]')
    expect(page.locator(node(page, "$.all[0]"))).to_have_attribute("data-node", "not")
    expect(page.locator(node(page, "$.all[0].not"))).to_have_attribute("data-kind", "field")
    page.click(f'{node(page, "$.all[0]")} > .seg-head [data-role="unnegate"]')
    expect(page.locator(node(page, "$.all[0]"))).to_have_attribute("data-kind", "field")
    # when the root switches to "any" and every condition is deleted
    page.select_option(f'{root} > .seg-head select[data-key="combinator"]', "any")
    expect(page.locator(node(page, "$.any[0]"))).to_be_visible()
    for _ in kinds:
        page.click(f'{node(page, "$.any[0]")} > .seg-side [data-role="delete"]')
    # then the builder is empty again and asks for a first condition
    expect(page.locator("[data-node=condition]")).to_have_count(0)
    expect(page.locator("#live-meta")).to_have_text("添加条件开始筛选")
    expect(page.locator("#live-count")).to_have_text("—")
    assert page.locator("#definition").input_value() == '{"any":[]}'
    assert operator.server_errors == []
    assert operator.script_errors == []
