"""Console: challenge form errors name the field, the detail shows the leaderboard; the posts queue
escapes member HTML, features, hides and rewards once; the API does the same under its scopes."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.challenges import posts, service
from siyu.kit.clock import FrozenClock
from siyu.models import Role, Workspace
from siyu.models.challenge import Challenge, PostStatus
from tests.community.challenges.factories import balance, make_challenge, make_person
from tests.factories import make_token, make_user
from tests.web.conftest import PASSWORD, login


def _admin(db: Session, clock: FrozenClock, client: TestClient, role: Role = Role.ADMIN) -> tuple[Workspace, str]:
    from tests.factories import make_workspace

    ws = make_workspace(db, clock=clock, name="花间集")
    user = make_user(db, clock=clock, workspace=ws, role=role, password=PASSWORD)
    db.commit()
    return ws, login(client, user.email)


FORM = {
    "title": "7天早餐打卡",
    "topic": "#早餐打卡",
    "starts_on": "2026-11-23",
    "ends_on": "2026-11-29",
    "days_required": "7",
    "points_per_day": "10",
    "completion_bonus": "50",
    "certificate_title": "",
    "description": "",
}


def test_create_from_the_form_and_refuse_impossible_days(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an admin in the console
    ws, csrf = _admin(db, clock, client)
    # when the form asks for 8 days in a 7-day range, then 422 names days_required and nothing is saved
    bad = client.post("/community/challenges", data={**FORM, "days_required": "8", "csrf_token": csrf})
    assert bad.status_code == 422
    assert "days_required: at most 7" in bad.text
    assert db.scalar(select(func.count()).select_from(Challenge).where(Challenge.workspace_id == ws.id)) == 0
    # when the form is right, then the challenge is saved (draft) and published from its page
    good = client.post("/community/challenges", data={**FORM, "csrf_token": csrf})
    assert good.status_code == 303
    challenge = db.scalars(select(Challenge).where(Challenge.workspace_id == ws.id)).one()
    assert (good.headers["location"], challenge.topic) == (f"/community/challenges/{challenge.id}", "早餐打卡")
    published = client.post(
        f"/community/challenges/{challenge.id}/status", data={"status": "published", "csrf_token": csrf}
    )
    assert published.status_code == 303
    db.refresh(challenge)
    assert challenge.status == "published"
    assert client.get("/community/challenges").status_code == 200


def test_detail_lists_the_leaderboard(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws, _csrf = _admin(db, clock, client)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    fang = make_person(db, workspace=ws, clock=clock, name="王芳")
    service.check_in(
        db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=fang.id, body="早", images=[], clock=clock
    )
    db.commit()
    page = client.get(f"/community/challenges/{challenge.id}")
    assert page.status_code == 200
    assert f'<td>1</td><td><a href="/customers/{fang.id}">王芳</a></td><td class="text-end">1</td>' in page.text


def test_posts_queue_escapes_features_and_rewards_once(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a post with a script in its text
    ws, csrf = _admin(db, clock, client)
    author = make_person(db, workspace=ws, clock=clock)
    post = posts.create_post(
        db, workspace_id=ws.id, customer_id=author.id, topic="晒单", body="<script>alert(1)</script>", images=[],
        clock=clock,
    )  # fmt: skip
    db.commit()
    # when the moderator opens the queue, then the text is escaped
    page = client.get("/community/posts?topic=晒单")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    # when they feature it and reward it twice
    assert client.post(f"/community/posts/{post.id}/feature", data={"csrf_token": csrf}).status_code == 303
    reward = {"csrf_token": csrf, "points": "30", "reason": "优质晒单", "back": "/community/posts?status=featured"}
    first = client.post(f"/community/posts/{post.id}/reward", data=reward)
    second = client.post(f"/community/posts/{post.id}/reward", data=reward)
    # then featured, 30 points once
    assert (first.headers["location"], second.status_code) == ("/community/posts?status=featured", 303)
    db.refresh(post)
    assert (post.status, post.rewarded_points, balance(db, author)) == (PostStatus.FEATURED, 30, 30)


def test_analyst_cannot_moderate(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an analyst (community:read only) and a post
    ws, csrf = _admin(db, clock, client, role=Role.ANALYST)
    author = make_person(db, workspace=ws, clock=clock)
    post = posts.create_post(
        db, workspace_id=ws.id, customer_id=author.id, topic="晒单", body="好", images=[], clock=clock
    )
    db.commit()
    # when they try to hide it, then 403 and nothing changed
    assert client.get("/community/posts").status_code == 200
    assert client.post(f"/community/posts/{post.id}/hide", data={"csrf_token": csrf}).status_code == 403
    db.refresh(post)
    assert post.status == PostStatus.VISIBLE


def test_api_challenges_and_moderation(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an API token of the workspace and a member's post
    from tests.factories import make_workspace

    ws = make_workspace(db, clock=clock)
    token = make_token(db, clock=clock, workspace=ws)
    author = make_person(db, workspace=ws, clock=clock)
    post = posts.create_post(
        db, workspace_id=ws.id, customer_id=author.id, topic="晒单", body="好", images=[], clock=clock
    )
    db.commit()
    auth = {"Authorization": f"Bearer {token}"}
    body = {k: v for k, v in FORM.items() if v != ""}
    # when a challenge is created with impossible days, then 422 names the field
    bad = client.post("/api/v1/challenges", json={**body, "days_required": 9}, headers=auth)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"] == {"field": "days_required"}
    created = client.post("/api/v1/challenges", json=body, headers=auth)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert (
        client.post(f"/api/v1/challenges/{cid}/status", json={"status": "published"}, headers=auth).json()["status"]
        == "published"
    )
    assert client.get(f"/api/v1/challenges/{cid}/leaderboard", headers=auth).json() == []
    # when the post is hidden and rewarded twice
    assert client.post(f"/api/v1/posts/{post.id}/hide", headers=auth).json()["status"] == "hidden"
    reward = {"points": 20, "reason": "优质晒单"}
    assert client.post(f"/api/v1/posts/{post.id}/reward", json=reward, headers=auth).status_code == 200
    again = client.post(f"/api/v1/posts/{post.id}/reward", json=reward, headers=auth)
    # then the second is a 409 and the points moved once
    assert (again.status_code, again.json()["error"]["code"]) == (409, "post_already_rewarded")
    listed = client.get("/api/v1/posts?status=hidden", headers=auth).json()
    assert [(p["id"], p["rewarded_points"]) for p in listed] == [(post.id, 20)]
    assert balance(db, author) == 20
