"""The console's referral pages: program list, create/edit with rewards, unlocks and the poster
background (PNG/JPEG ≤ 2 MB, else 422 naming the field), status, detail with metrics and the K-factor
chart, poster preview, the referral tree, and the review queue (growth:review only)."""

from __future__ import annotations

import io
import re
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Role
from siyu.models.referral import (
    Referral,
    ReferralProgram,
    ReferralStatus,
    ReferralUnlock,
    ReferralVisit,
    VisitKind,
)
from siyu.referrals import attribution
from tests.factories import make_customer, make_user
from tests.referrals.pages_support import World, make_world
from tests.web.conftest import PASSWORD, app, client, login

__all__ = ["app", "client"]  # the console app over the test's transaction, and its client

FORM: dict[str, str] = {
    "name": "双11 老带新",
    "kind": "referral",
    "condition": "first_order_over",
    "min_order_fen": "99.00",
    "referrer_reward_kind": "points",
    "referrer_reward_value": "200",
    "referee_reward_kind": "points",
    "referee_reward_value": "",
    "attribution_days": "7",
    "daily_cap_per_referrer": "5",
    "burst_window_minutes": "60",
    "point_cost_fen": "1",
    "target_count": "0",
    "poster_title": "邀请好友得积分",
    "poster_text": "好友首单满 99 元，你得 200 积分",
    "unlocks": "3,铜牌,300\n5，银牌，500",
}


def _signed_in(db: Session, client: TestClient, world: World, clock: FrozenClock, role: Role = Role.ADMIN) -> str:
    user = make_user(db, clock=clock, workspace=world.workspace, role=role, password=PASSWORD)
    db.commit()
    return login(client, user.email)


def _png(kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 400), "#336699").save(out, format=kind)
    return out.getvalue()


def _create(client: TestClient, csrf: str, form: dict[str, str], files: dict[str, Any] | None = None) -> Any:
    return client.post("/growth/referrals", data={**form, "csrf_token": csrf}, files=files)


def _programs(db: Session, world: World) -> list[ReferralProgram]:
    db.expire_all()
    return list(
        db.scalars(select(ReferralProgram).where(ReferralProgram.id != world.program.id).order_by(ReferralProgram.id))
    )


def test_list_and_new_form(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    _signed_in(db, client, world, clock)
    # when the list and the new-program form are opened
    listing = client.get("/growth/referrals")
    form = client.get("/growth/referrals/new")
    # then the program is listed, running, and the form has every field and the file input
    assert listing.status_code == 200
    assert re.search(r'data-program="老带新">.*?进行中', listing.text, flags=re.S)
    assert form.status_code == 200
    for name in ("name", "kind", "condition", "unlocks", "live_code_id", "poster_background"):
        assert f'name="{name}"' in form.text, name
    assert 'enctype="multipart/form-data"' in form.text


def test_create_a_program_with_unlocks_and_a_background(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    csrf = _signed_in(db, client, world, clock)
    # when an operator saves the form with a JPEG background
    form = {**FORM, "live_code_id": str(world.live_code.id)}
    response = _create(client, csrf, form, files={"poster_background": ("bg.jpg", _png("JPEG"), "image/jpeg")})
    # then a draft program exists with exactly what was typed
    assert response.status_code == 303, response.text
    [program] = _programs(db, world)
    assert response.headers["location"] == f"/growth/referrals/{program.id}"
    assert (program.name, program.status, program.condition, program.min_order_fen) == (
        "双11 老带新",
        "draft",
        "first_order_over",
        9_900,
    )
    assert (program.referrer_reward, program.referee_reward) == ({"points": 200}, {})
    assert (program.daily_cap_per_referrer, program.burst_threshold, program.live_code_id) == (
        5,
        None,
        world.live_code.id,
    )
    unlocks = db.scalars(select(ReferralUnlock).where(ReferralUnlock.program_id == program.id)).all()
    assert [(u.threshold, u.name, u.reward) for u in sorted(unlocks, key=lambda u: u.threshold)] == [
        (3, "铜牌", {"points": 300}),
        (5, "银牌", {"points": 500}),
    ]
    # and the background is stored normalised as a poster-sized PNG
    assert program.poster_background_png is not None
    with Image.open(io.BytesIO(program.poster_background_png)) as image:
        assert (image.format, image.size) == ("PNG", (750, 1334))
    audited = select(AuditEntry.action).where(
        AuditEntry.entity_type == "referral_program", AuditEntry.entity_id == str(program.id)
    )
    actions = db.scalars(audited).all()
    assert set(actions) >= {"referral_program.create", "referral_program.poster"}


def test_a_pdf_background_is_refused_naming_the_field(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    csrf = _signed_in(db, client, world, clock)
    # when a PDF renamed .png is uploaded as the background
    pdf = ("bg.png", b"%PDF-1.7\n1 0 obj<<>>endobj\n", "image/png")
    response = _create(client, csrf, FORM, files={"poster_background": pdf})
    # then the form comes back with the error next to the file input, and nothing is created
    assert response.status_code == 422
    assert 'data-error="poster_background"' in response.text
    assert "the poster background must be a PNG or JPEG image" in response.text
    assert 'value="双11 老带新"' in response.text  # what was typed is kept
    assert _programs(db, world) == []


def test_bad_fields_are_refused_naming_them(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    csrf = _signed_in(db, client, world, clock)
    cases = {
        "unlocks": {"unlocks": "3,铜牌"},
        "min_order_fen": {"min_order_fen": "9.999"},
        "attribution_days": {"attribution_days": "0"},
        "referrer_reward_value": {"referrer_reward_value": "-5"},
        "kind": {"kind": "pyramid"},
    }
    for field, change in cases.items():
        # when a form with one bad field is saved
        response = _create(client, csrf, {**FORM, **change})
        # then it is refused, the error shown at that field, nothing created
        assert response.status_code == 422, field
        assert f'data-error="{field}"' in response.text, (field, response.text[-2000:])
    assert _programs(db, world) == []


def test_edit_start_and_detail(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    csrf = _signed_in(db, client, world, clock)
    program_id = world.program.id
    # given the edit form shows the program as stored
    form = client.get(f"/growth/referrals/{program_id}/edit")
    assert form.status_code == 200
    assert 'value="老带新"' in form.text and 'name="kind"' not in form.text  # the kind is fixed
    # when the operator renames it, sets a burst threshold and pauses it
    values = {**FORM, "name": "老带新 · 冬季", "burst_threshold": "10", "live_code_id": str(world.live_code.id)}
    values.pop("kind")
    saved = client.post(f"/growth/referrals/{program_id}/edit", data={**values, "csrf_token": csrf})
    paused = client.post(f"/growth/referrals/{program_id}/status", data={"status": "paused", "csrf_token": csrf})
    # then both are saved
    assert (saved.status_code, paused.status_code) == (303, 303), saved.text
    db.expire_all()
    program = db.get(ReferralProgram, program_id)
    assert program is not None
    assert (program.name, program.burst_threshold, program.status) == ("老带新 · 冬季", 10, "paused")
    # and the detail page shows it with its metrics table and chart data
    detail = client.get(f"/growth/referrals/{program_id}")
    assert detail.status_code == 200
    assert "老带新 · 冬季" in detail.text and 'id="metrics-total"' in detail.text and 'id="k-chart"' in detail.text


def test_an_illegal_status_change_is_refused(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    csrf = _signed_in(db, client, world, clock)
    client.post(f"/growth/referrals/{world.program.id}/status", data={"status": "ended", "csrf_token": csrf})
    # when an ended program is started again
    response = client.post(
        f"/growth/referrals/{world.program.id}/status", data={"status": "active", "csrf_token": csrf}
    )
    # then it is refused and stays ended
    assert response.status_code == 422
    db.expire_all()
    program = db.get(ReferralProgram, world.program.id)
    assert program is not None and program.status == "ended"


def test_detail_metrics_count_shares_and_scans(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given one share and two scans of 王芳's code today
    world = make_world(db, clock=clock)
    for kind in (VisitKind.SHARE, VisitKind.SCAN, VisitKind.SCAN):
        attribution.record_visit(db, code=world.code, kind=kind, visitor_id="v1", device_id=None, clock=clock)
    db.commit()
    _signed_in(db, client, world, clock)
    # when the detail page is opened
    page = client.get(f"/growth/referrals/{world.program.id}?period=day")
    # then the totals row counts 1 share, 1 scan (the same visitor reloading the same day), 1 inviting member
    total = re.search(r'id="metrics-total">(.*?)</tr>', page.text, flags=re.S)
    assert total, page.text
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", total.group(1), re.S)]
    assert cells[:4] == ["合计", "1", "1", "1"]


def test_poster_preview_is_a_png(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    _signed_in(db, client, world, clock)
    response = client.get(f"/growth/referrals/{world.program.id}/poster.png")
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png")
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (750, 1334)


def _flagged(db: Session, world: World, clock: FrozenClock, name: str) -> Referral:
    referee = make_customer(db, actor=Actor.system(world.workspace.id), clock=clock, name=name).customer
    referral = Referral(
        workspace_id=world.workspace.id,
        program_id=world.program.id,
        code_id=world.code.id,
        referrer_customer_id=world.referrer.id,
        referee_customer_id=referee.id,
        status=ReferralStatus.FLAGGED,
        reason="burst: 5 in 60 minutes",
        attributed_at=clock.now(),
    )
    db.add(referral)
    db.commit()
    return referral


def test_review_queue_approve_and_reject(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given two flagged referrals of 王芳
    world = make_world(db, clock=clock)
    first, second = _flagged(db, world, clock, "李雷"), _flagged(db, world, clock, "韩梅梅")
    csrf = _signed_in(db, client, world, clock)
    # when the reviewer opens the queue
    queue = client.get("/growth/referrals/review")
    # then both are listed with who invited whom and why they were held
    assert queue.status_code == 200
    assert re.search(r"王芳.*?李雷.*?burst: 5 in 60 minutes", queue.text, flags=re.S)
    # when one is approved and the other rejected, with notes
    approve = {"decision": "approve", "note": "同事推荐，核实无误", "csrf_token": csrf}
    reject = {"decision": "reject", "note": "同一设备", "csrf_token": csrf}
    assert client.post(f"/growth/referrals/review/{first.id}", data=approve).status_code == 303
    assert client.post(f"/growth/referrals/review/{second.id}", data=reject).status_code == 303
    # then they are decided with the notes, and the queue is empty
    db.expire_all()
    decided = [db.get(Referral, first.id), db.get(Referral, second.id)]
    assert [(r.status, r.reason) for r in decided if r] == [
        (ReferralStatus.PENDING, "同事推荐，核实无误"),
        (ReferralStatus.REJECTED, "review: 同一设备"),
    ]
    assert "没有待审核的邀请" in client.get("/growth/referrals/review").text


def test_review_needs_growth_review(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a flagged referral and an analyst (growth:read only)
    world = make_world(db, clock=clock)
    flagged = _flagged(db, world, clock, "李雷")
    csrf = _signed_in(db, client, world, clock, role=Role.ANALYST)
    # when the analyst opens the queue or posts a decision
    queue = client.get("/growth/referrals/review")
    decision = client.post(
        f"/growth/referrals/review/{flagged.id}", data={"decision": "approve", "note": "", "csrf_token": csrf}
    )
    # then both are refused and nothing changed
    assert (queue.status_code, decision.status_code) == (403, 403)
    db.expire_all()
    referral = db.get(Referral, flagged.id)
    assert referral is not None and referral.status == ReferralStatus.FLAGGED
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "referral.review")) == 0


def test_tree_nests_referees_under_their_referrer(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given 王芳 referred 李雷, who referred 韩梅梅
    world = make_world(db, clock=clock)
    actor = Actor.system(world.workspace.id)
    lilei = make_customer(db, actor=actor, clock=clock, name="李雷").customer
    hmm = make_customer(db, actor=actor, clock=clock, name="韩梅梅").customer
    for referrer, referee in ((world.referrer.id, lilei.id), (lilei.id, hmm.id)):
        db.add(
            Referral(
                workspace_id=world.workspace.id,
                program_id=world.program.id,
                code_id=world.code.id,
                referrer_customer_id=referrer,
                referee_customer_id=referee,
                status=ReferralStatus.QUALIFIED,
                attributed_at=clock.now(),
            )
        )
    db.commit()
    _signed_in(db, client, world, clock)
    # when the tree of the program is opened
    page = client.get(f"/growth/referrals/tree?program_id={world.program.id}")
    # then 韩梅梅 is inside 李雷's list, which is inside 王芳's
    assert page.status_code == 200
    nested = re.search(
        rf'data-customer="{world.referrer.id}">.*?王芳.*?<ul[^>]*>.*?data-customer="{lilei.id}">.*?李雷.*?<ul[^>]*>'
        rf'.*?data-customer="{hmm.id}">.*?韩梅梅',
        page.text,
        flags=re.S,
    )
    assert nested, page.text
    assert db.scalar(select(func.count()).select_from(ReferralVisit)) == 0
