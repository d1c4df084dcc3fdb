"""Member H5 pages of community challenges and posts: the challenge list, a challenge (progress,
check-in with text and images, leaderboard), the certificate PNG, the topic feed with likes."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from siyu.community.challenges import posts, service
from siyu.community.challenges.certificate import CertificateText, render_certificate
from siyu.community.challenges.errors import ChallengeNotFound, ChallengeNotOpen, InvalidPost, PostNotFound
from siyu.community.challenges.images import MAX_IMAGE_BYTES, MAX_IMAGES, clean_images
from siyu.kit.errors import DomainError
from siyu.kit.ids import MAX_ID
from siyu.loyalty.h5 import reading
from siyu.loyalty.h5.views.common import (
    FormDep,
    MemberDep,
    MemberRoute,
    clock_of,
    member_transaction,
    render_member,
    see_other,
    translator,
)
from siyu.loyalty.member_tasks.periods import local_day
from siyu.models import Customer
from siyu.models.challenge import Challenge

router = APIRouter(route_class=MemberRoute)


def _id(value: str, missing: type[DomainError] = ChallengeNotFound) -> int:
    """A path id; anything else is the friendly 404."""
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_ID:
        raise missing(f"no such id {value!r}")
    return int(value)


async def posted_images(request: Request, _form: FormDep) -> list[bytes]:
    """The image files of a multipart post (an empty file input sends one empty part: skipped).
    Reads at most one byte past the limit of each, so a huge file is refused without buffering it."""
    form = await request.form()
    found: list[bytes] = []
    for value in form.getlist("images"):
        if not isinstance(value, UploadFile):
            continue
        if len(found) >= MAX_IMAGES + 1:
            await value.close()
            continue
        data = await value.read(MAX_IMAGE_BYTES + 1)
        await value.close()
        if not data and not value.filename:
            continue
        found.append(data)
    return found


ImagesDep = Annotated[list[bytes], Depends(posted_images)]


def _refusal(request: Request, exc: DomainError) -> str:
    """The member's words for a refused post (nothing was written)."""
    _ = translator(request)
    field = (exc.details or {}).get("field") if isinstance(exc.details, dict) else None
    if isinstance(exc, ChallengeNotOpen):
        return _("今天不在挑战日期内，不能打卡")
    if isinstance(exc, InvalidPost) and field == "images":
        return _("图片需为 JPEG、PNG 或 WebP，每张不超过 5 MB、边长不超过 4096 像素，最多 9 张")
    if isinstance(exc, InvalidPost) and field == "body":
        return _("请填写 1 到 1000 字的内容")
    if isinstance(exc, InvalidPost) and field == "topic":
        return _("请填写 1 到 40 字的话题")
    return _("提交未成功，请稍后再试")


# --- challenges -------------------------------------------------------------------------------


@router.get("/challenges")
def challenges_page(request: Request, member: MemberDep) -> Response:
    """Published challenges, with the member's days done in each."""
    with member_transaction(request, member, read_only=True) as session:
        rows = []
        for challenge in service.member_challenges(session, workspace_id=member.workspace_id):
            entry = service.entry_of(session, challenge_id=challenge.id, customer_id=member.customer_id)
            rows.append((challenge, entry))
        today = service.today_for(session, member.workspace_id, clock_of(request))
        return render_member(
            request, session, member, "member/challenges.html", {"rows": rows, "today": today}, tab="challenges"
        )


def _challenge_page(
    request: Request,
    member: Any,
    challenge_id: int,
    *,
    error: str = "",
    body: str = "",
    status_code: int = 200,
) -> Response:
    with member_transaction(request, member, read_only=True) as session:
        challenge = service.published(session, workspace_id=member.workspace_id, challenge_id=challenge_id)
        today = service.today_for(session, member.workspace_id, clock_of(request))
        entry = service.entry_of(session, challenge_id=challenge.id, customer_id=member.customer_id)
        days = service.my_days(session, challenge_id=challenge.id, customer_id=member.customer_id)
        context = {
            "challenge": challenge,
            "entry": entry,
            "days": days,
            "is_open": challenge.starts_on <= today <= challenge.ends_on,
            "checked_today": today in days,
            "board": service.leaderboard(
                session, workspace_id=member.workspace_id, challenge_id=challenge.id, limit=20
            ),
            "items": posts.feed(
                session,
                workspace_id=member.workspace_id,
                viewer_customer_id=member.customer_id,
                challenge_id=challenge.id,
                limit=30,
            ),
            "checked": request.query_params.get("checked", ""),
            "error": error,
            "body": body,
            "back": f"/m/challenges/{challenge.id}",
        }
        return render_member(
            request, session, member, "member/challenge.html", context, tab="challenges", status_code=status_code
        )


@router.get("/challenges/{challenge_id}")
def challenge_page(request: Request, challenge_id: str, member: MemberDep) -> Response:
    """One challenge: my progress, today's check-in form, the leaderboard and the posts."""
    return _challenge_page(request, member, _id(challenge_id))


@router.post("/challenges/{challenge_id}/join")
def join_challenge(request: Request, challenge_id: str, member: MemberDep, form: FormDep) -> Response:
    """Join (twice is once)."""
    cid = _id(challenge_id)
    try:
        with member_transaction(request, member) as session:
            service.join(
                session, workspace_id=member.workspace_id, challenge_id=cid, customer_id=member.customer_id,
                clock=clock_of(request),
            )  # fmt: skip
    except ChallengeNotOpen as exc:
        return _challenge_page(request, member, cid, error=_refusal(request, exc), status_code=409)
    return see_other(f"/m/challenges/{cid}")


@router.post("/challenges/{challenge_id}/check-in")
def check_in(request: Request, challenge_id: str, member: MemberDep, form: FormDep, images: ImagesDep) -> Response:
    """Today's check-in with text and up to 9 images; a double submit lands on "已打卡"."""
    cid = _id(challenge_id)
    body = form.get("body", "")
    try:
        cleaned = clean_images(images)
        with member_transaction(request, member) as session:
            done = service.check_in(
                session, workspace_id=member.workspace_id, challenge_id=cid, customer_id=member.customer_id,
                body=body, images=cleaned, clock=clock_of(request),
            )  # fmt: skip
            is_new = done.is_new
    except ChallengeNotFound:
        raise
    except (InvalidPost, ChallengeNotOpen) as exc:
        return _challenge_page(
            request, member, cid, error=_refusal(request, exc), body=body, status_code=exc.status_code
        )
    return see_other(f"/m/challenges/{cid}?checked={'new' if is_new else 'again'}")


@router.get("/challenges/{challenge_id}/certificate.png")
def certificate(request: Request, challenge_id: str, member: MemberDep) -> Response:
    """The member's completion certificate (404 until they complete)."""
    cid = _id(challenge_id)
    with member_transaction(request, member, read_only=True) as session:
        challenge: Challenge = service.published(session, workspace_id=member.workspace_id, challenge_id=cid)
        entry = service.entry_of(session, challenge_id=cid, customer_id=member.customer_id)
        if entry is None or entry.completed_at is None or entry.certificate_no is None:
            raise ChallengeNotFound("no certificate yet", details={"field": "challenge_id"})
        customer = session.get(Customer, member.customer_id)
        text = CertificateText(
            brand=reading.brand_name(session, member.workspace_id),
            member=posts.display_name(customer.name if customer else None, member.customer_id),
            title=challenge.certificate_title or challenge.title,
            days=entry.days_done,
            completed_on=local_day(entry.completed_at, reading.zone_of(session, member.workspace_id)),
            number=entry.certificate_no,
        )
    return Response(
        render_certificate(text),
        media_type="image/png",
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


# --- feed -------------------------------------------------------------------------------------


def _feed_page(
    request: Request, member: Any, *, topic: str, error: str = "", body: str = "", status_code: int = 200
) -> Response:
    with member_transaction(request, member, read_only=True) as session:
        items = posts.feed(
            session, workspace_id=member.workspace_id, viewer_customer_id=member.customer_id, topic=topic or None
        )
        query = f"?topic={quote(topic)}" if topic else ""
        context = {"items": items, "topic": topic, "error": error, "body": body, "back": f"/m/feed{query}"}
        return render_member(request, session, member, "member/feed.html", context, tab="feed", status_code=status_code)


@router.get("/feed")
def feed_page(request: Request, member: MemberDep, topic: str = "") -> Response:
    """The topic feed: featured first, then newest; my hidden posts stay visible to me."""
    return _feed_page(request, member, topic=topic.strip()[:40])


@router.post("/feed")
def create_post(request: Request, member: MemberDep, form: FormDep, images: ImagesDep) -> Response:
    """A topic post (晒单) with text and up to 9 images."""
    topic = form.get("topic", "")
    body = form.get("body", "")
    try:
        cleaned = clean_images(images)
        with member_transaction(request, member) as session:
            post = posts.create_post(
                session, workspace_id=member.workspace_id, customer_id=member.customer_id, topic=topic, body=body,
                images=cleaned, clock=clock_of(request),
            )  # fmt: skip
            shown_topic = post.topic
    except InvalidPost as exc:
        return _feed_page(
            request, member, topic=topic.strip()[:40], error=_refusal(request, exc), body=body, status_code=422
        )
    return see_other(f"/m/feed?topic={quote(shown_topic)}")


def _back(form: dict[str, str], default: str) -> str:
    """Where a like returns: a local /m/ path only (never an open redirect)."""
    target = form.get("back", "")
    return target if target.startswith("/m/") and not target.startswith("/m//") and "\\" not in target else default


@router.post("/posts/{post_id}/like")
def like_post(request: Request, post_id: str, member: MemberDep, form: FormDep) -> Response:
    """Like a post (a second like changes nothing)."""
    pid = _id(post_id, PostNotFound)
    with member_transaction(request, member) as session:
        posts.like(
            session, workspace_id=member.workspace_id, post_id=pid, customer_id=member.customer_id,
            clock=clock_of(request),
        )  # fmt: skip
    return see_other(_back(form, "/m/feed"))


@router.post("/posts/{post_id}/unlike")
def unlike_post(request: Request, post_id: str, member: MemberDep, form: FormDep) -> Response:
    """Take a like back."""
    pid = _id(post_id, PostNotFound)
    with member_transaction(request, member) as session:
        posts.unlike(session, workspace_id=member.workspace_id, post_id=pid, customer_id=member.customer_id)
    return see_other(_back(form, "/m/feed"))


@router.get("/post-images/{image_id}")
def post_image(request: Request, image_id: str, member: MemberDep) -> Response:
    """An image of a post the member may see (re-encoded at upload: only pixels)."""
    iid = _id(image_id, PostNotFound)
    with member_transaction(request, member, read_only=True) as session:
        image = posts.image_for_member(
            session, workspace_id=member.workspace_id, image_id=iid, customer_id=member.customer_id
        )
        data, content_type = image.data, image.content_type
    return Response(
        data,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
