"""Member pages: check in with an image, a double submit lands on "已打卡" (nothing twice), bad
uploads are refused naming the images, member text is escaped, likes, the certificate PNG."""

from __future__ import annotations

import io
from datetime import timedelta

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.challenges import posts, service
from siyu.kit.clock import FrozenClock
from siyu.models.challenge import Post, PostImage
from tests.community.challenges.factories import balance, image_bytes, make_challenge, make_person
from tests.factories import actor_for, make_workspace
from tests.loyalty.h5.conftest import csrf_of, sign_in


def _setup(db: Session, clock: FrozenClock, client: TestClient, **values: object) -> tuple[int, int, int, str]:
    ws = make_workspace(db, clock=clock, name="花间集")
    challenge = make_challenge(db, workspace=ws, clock=clock, **values)  # type: ignore[arg-type]
    member = make_person(db, workspace=ws, clock=clock)
    db.commit()
    sign_in(client, ws.id, member.id, clock)
    page = client.get(f"/m/challenges/{challenge.id}")
    assert page.status_code == 200, page.text
    return ws.id, challenge.id, member.id, csrf_of(page.text)


def test_check_in_with_an_image_then_a_double_submit(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a member on the challenge page
    _ws, cid, member_id, csrf = _setup(db, clock, client)
    form = {"csrf_token": csrf, "body": "燕麦+鸡蛋\n第二行"}
    files = [("images", ("breakfast.jpg", image_bytes("JPEG"), "image/jpeg"))]
    # when they check in, then submit the same form again
    first = client.post(f"/m/challenges/{cid}/check-in", data=form, files=files)
    again = client.post(f"/m/challenges/{cid}/check-in", data=form, files=files)
    # then one post with one image, 10 points once, and the second lands on "已打卡"
    assert (first.status_code, first.headers["location"]) == (303, f"/m/challenges/{cid}?checked=new")
    assert again.headers["location"] == f"/m/challenges/{cid}?checked=again"
    page = client.get(again.headers["location"])
    assert "已打卡，今天不会重复计分" in page.text
    assert 'data-testid="progress">已打卡 1/3 天<' in page.text
    assert 'data-testid="checked-today"' in page.text
    post = db.scalars(select(Post).where(Post.customer_id == member_id)).one()
    assert post.body == "燕麦+鸡蛋\n第二行"
    image = db.scalars(select(PostImage).where(PostImage.post_id == post.id)).one()
    served = client.get(f"/m/post-images/{image.id}")
    assert (served.status_code, served.headers["content-type"]) == (200, "image/jpeg")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert balance_of(db, member_id) == 10


def balance_of(db: Session, customer_id: int) -> int:
    from siyu.models import Customer

    customer = db.get(Customer, customer_id)
    assert customer is not None
    return balance(db, customer)


def test_a_pdf_renamed_jpg_is_refused_and_nothing_is_written(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a member on the challenge page
    _ws, cid, member_id, csrf = _setup(db, clock, client)
    # when they upload a PDF named .jpg with their text
    response = client.post(
        f"/m/challenges/{cid}/check-in",
        data={"csrf_token": csrf, "body": "早餐"},
        files=[("images", ("photo.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "image/jpeg"))],
    )
    # then 422 with the images rule, their text kept, no post and no points
    assert response.status_code == 422
    assert "图片需为 JPEG、PNG 或 WebP" in response.text
    assert ">早餐</textarea>" in response.text
    assert db.scalar(select(func.count()).select_from(Post).where(Post.customer_id == member_id)) == 0
    assert balance_of(db, member_id) == 0


def test_an_oversized_image_is_refused(db: Session, clock: FrozenClock, client: TestClient) -> None:
    _ws, cid, member_id, csrf = _setup(db, clock, client)
    big = b"\xff\xd8\xff\xe0" + b"\0" * (5 * 1024 * 1024)
    response = client.post(
        f"/m/challenges/{cid}/check-in",
        data={"csrf_token": csrf, "body": "早餐"},
        files=[("images", ("big.jpg", big, "image/jpeg"))],
    )
    assert response.status_code == 422
    assert db.scalar(select(func.count()).select_from(Post).where(Post.customer_id == member_id)) == 0


def test_check_in_outside_the_dates_is_a_friendly_409(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a member on the page, and the challenge ends (2026-11-30)
    _ws, cid, member_id, csrf = _setup(db, clock, client)
    clock.advance(timedelta(days=8))
    # when they submit a check-in
    response = client.post(f"/m/challenges/{cid}/check-in", data={"csrf_token": csrf, "body": "晚了"})
    # then it is refused and nothing is written
    assert response.status_code == 409
    assert "今天不在挑战日期内，不能打卡" in response.text
    assert db.scalar(select(func.count()).select_from(Post).where(Post.customer_id == member_id)) == 0


def test_a_form_without_csrf_is_refused(db: Session, clock: FrozenClock, client: TestClient) -> None:
    _ws, cid, member_id, _csrf = _setup(db, clock, client)
    response = client.post(f"/m/challenges/{cid}/check-in", data={"csrf_token": "forged", "body": "x"})
    assert response.status_code == 403
    assert db.scalar(select(func.count()).select_from(Post).where(Post.customer_id == member_id)) == 0


def test_html_in_posts_is_escaped_in_the_feed(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a member's post with a script and markup
    _ws, _cid, _member, csrf = _setup(db, clock, client)
    response = client.post(
        "/m/feed", data={"csrf_token": csrf, "topic": "晒单", "body": '<script>alert("x")</script><b>好</b>'}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/m/feed?topic=%E6%99%92%E5%8D%95")
    # when the feed shows it
    page = client.get(response.headers["location"])
    # then the text is shown, never run
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;好&lt;/b&gt;" in page.text


def test_like_from_the_feed_counts_once(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given another member's post
    ws_id, _cid, _member, csrf = _setup(db, clock, client)
    from siyu.models import Workspace

    ws = db.get(Workspace, ws_id)
    assert ws is not None
    other = make_person(db, workspace=ws, clock=clock, name="李雷")
    post = posts.create_post(
        db, workspace_id=ws_id, customer_id=other.id, topic="晒单", body="好", images=[], clock=clock
    )
    db.commit()
    # when the member likes it twice
    for _ in range(2):
        response = client.post(f"/m/posts/{post.id}/like", data={"csrf_token": csrf, "back": "/m/feed"})
        assert (response.status_code, response.headers["location"]) == (303, "/m/feed")
    # then one like, and the button shows it pressed
    page = client.get("/m/feed")
    assert 'aria-pressed="true">♥ <span data-testid="likes">1</span>' in page.text
    db.refresh(post)
    assert post.likes_count == 1
    # and an open redirect is never followed
    response = client.post(f"/m/posts/{post.id}/unlike", data={"csrf_token": csrf, "back": "https://evil.example"})
    assert response.headers["location"] == "/m/feed"


def test_certificate_after_completion_only(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a one-day challenge
    _ws, cid, member_id, csrf = _setup(db, clock, client, days_required=1)
    # when there is no completion yet, then no certificate
    assert client.get(f"/m/challenges/{cid}/certificate.png").status_code == 404
    # when the member checks in once
    client.post(f"/m/challenges/{cid}/check-in", data={"csrf_token": csrf, "body": "完成"})
    # then the page shows the certificate number and the PNG renders
    page = client.get(f"/m/challenges/{cid}")
    entry = service.entry_of(db, challenge_id=cid, customer_id=member_id)
    assert entry is not None and entry.certificate_no
    assert f"恭喜完成挑战！证书编号 {entry.certificate_no}" in page.text
    png = client.get(f"/m/challenges/{cid}/certificate.png")
    assert (png.status_code, png.headers["content-type"]) == (200, "image/png")
    with Image.open(io.BytesIO(png.content)) as image:
        assert image.size == (900, 1200)


def test_hidden_post_images_are_not_served_to_others(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given another member's hidden post with an image
    ws_id, _cid, _member_id, _csrf = _setup(db, clock, client)
    from siyu.community.challenges.images import clean_images
    from siyu.models import Workspace

    ws = db.get(Workspace, ws_id)
    assert ws is not None
    other = make_person(db, workspace=ws, clock=clock, name="李雷")
    post = posts.create_post(
        db, workspace_id=ws_id, customer_id=other.id, topic="晒单", body="好", images=clean_images([image_bytes()]),
        clock=clock,
    )  # fmt: skip
    posts.moderate(db, actor=actor_for(ws), post_id=post.id, action="hide", clock=clock)
    image_id = db.scalars(select(PostImage.id).where(PostImage.post_id == post.id)).one()
    db.commit()
    # when the signed-in member asks for it, then it is not found
    assert client.get(f"/m/post-images/{image_id}").status_code == 404
    assert client.get("/m/challenges/abc").status_code == 404
