"""Console pages of community challenges and post moderation: challenge CRUD with leaderboard and
participants; the posts queue (filter by topic/status; feature, hide, unhide, reward once)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import (
    FormField,
    brand_tz,
    error_field,
    form_page,
    object_values,
    parse,
    text_values,
    validated,
)
from siyu.community.challenges import posts, service
from siyu.community.challenges.schemas import ChallengeIn
from siyu.kit.errors import DomainError
from siyu.models.challenge import ChallengeStatus, PostStatus
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


STATUSES = {
    ChallengeStatus.DRAFT.value: _("草稿"),
    ChallengeStatus.PUBLISHED.value: _("已发布"),
    ChallengeStatus.ARCHIVED.value: _("已归档"),
}
POST_STATUSES = {
    PostStatus.VISIBLE.value: _("可见"),
    PostStatus.FEATURED.value: _("精选"),
    PostStatus.HIDDEN.value: _("已隐藏"),
}
FIELDS = (
    FormField("title", _("挑战名称"), required=True),
    FormField("topic", _("话题"), required=True, hint=_("如 7天早餐打卡，不用加 #")),
    FormField("starts_on", _("开始日期"), required=True, hint=_("YYYY-MM-DD，品牌时区")),
    FormField("ends_on", _("结束日期"), required=True, hint=_("YYYY-MM-DD，含当天")),
    FormField("days_required", _("需打卡天数"), kind="int", required=True),
    FormField("points_per_day", _("每天积分"), kind="int"),
    FormField("completion_bonus", _("完成奖励积分"), kind="int"),
    FormField("certificate_title", _("证书标题"), hint=_("留空则用挑战名称")),
    FormField("description", _("说明"), kind="textarea"),
)


def challenge_input(values: dict[str, str], ctx: Ctx) -> ChallengeIn:
    data = parse(values, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    return validated(ChallengeIn, {k: v for k, v in data.items() if v is not None})


@router.get("/community/challenges")
def challenges_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMUNITY_READ)
    rows = service.list_challenges(ctx.session, workspace_id=ctx.actor.workspace_id)
    return render(request, "community/challenges/list.html", {"rows": rows, "statuses": STATUSES})


def _form(
    request: Request, values: dict[str, str], challenge_id: int | None, errors: dict[str, str] | None = None
) -> Response:
    t = translator(request)
    return form_page(
        request,
        title=t("编辑挑战") if challenge_id else t("新建挑战"),
        back=f"/community/challenges/{challenge_id}" if challenge_id else "/community/challenges",
        action=f"/community/challenges/{challenge_id}/edit" if challenge_id else "/community/challenges",
        spec=FIELDS,
        values=values,
        errors=errors,
    )


@router.get("/community/challenges/new")
def new_challenge_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    today = service.today_for(ctx.session, ctx.actor.workspace_id, ctx.clock)
    defaults = {"days_required": "7", "points_per_day": "10", "completion_bonus": "50", "starts_on": today.isoformat()}
    return _form(request, defaults, None)


@router.post("/community/challenges")
def create_challenge(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    values = text_values(form, FIELDS)
    try:
        challenge = service.create_challenge(
            ctx.session, actor=ctx.actor, data=challenge_input(values, ctx), clock=ctx.clock
        )
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, values, None, {error_field(exc, FIELDS): error_text(request, exc)})
    flash(request, translator(request)("挑战已保存") + f": {challenge.title}")
    return redirect(f"/community/challenges/{challenge.id}")


@router.get("/community/challenges/{challenge_id}")
def challenge_page(request: Request, ctx: ConsoleCtx, challenge_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMUNITY_READ)
    ws = ctx.actor.workspace_id
    challenge = service.get_challenge(ctx.session, workspace_id=ws, challenge_id=challenge_id)
    context = {
        "challenge": challenge,
        "statuses": STATUSES,
        "board": service.leaderboard(ctx.session, workspace_id=ws, challenge_id=challenge.id, limit=500),
        "recent": posts.list_posts(ctx.session, actor=ctx.actor, challenge_id=challenge.id, limit=20),
        "post_statuses": POST_STATUSES,
    }
    return render(request, "community/challenges/detail.html", context)


@router.get("/community/challenges/{challenge_id}/edit")
def edit_challenge_page(request: Request, ctx: ConsoleCtx, challenge_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    challenge = service.get_challenge(ctx.session, workspace_id=ctx.actor.workspace_id, challenge_id=challenge_id)
    values = object_values(challenge, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    return _form(request, values, challenge.id)


@router.post("/community/challenges/{challenge_id}/edit")
def update_challenge(request: Request, ctx: ConsoleCtx, challenge_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    values = text_values(form, FIELDS)
    try:
        data = challenge_input(values, ctx)
        service.update_challenge(ctx.session, actor=ctx.actor, challenge_id=challenge_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _form(request, values, challenge_id, {error_field(exc, FIELDS): error_text(request, exc)})
    flash(request, translator(request)("挑战已保存"))
    return redirect(f"/community/challenges/{challenge_id}")


@router.post("/community/challenges/{challenge_id}/status")
def set_status(request: Request, ctx: ConsoleCtx, challenge_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    status = form.get("status")
    service.set_status(
        ctx.session, actor=ctx.actor, challenge_id=challenge_id, status=status if isinstance(status, str) else "",
        clock=ctx.clock,
    )  # fmt: skip
    flash(request, translator(request)("状态已更新"))
    return redirect(f"/community/challenges/{challenge_id}")


# --- posts ------------------------------------------------------------------------------------


@router.get("/community/posts")
def posts_page(request: Request, ctx: ConsoleCtx, topic: str = "", status: str = "") -> Response:
    ctx.actor.require(Scope.COMMUNITY_READ)
    topic = topic.strip()[:40]
    status = status if status in POST_STATUSES else ""
    rows = posts.list_posts(ctx.session, actor=ctx.actor, topic=topic or None, status=status or None, limit=200)
    images = posts.image_ids_of(ctx.session, [p.id for p, _name in rows])
    context = {"rows": rows, "images": images, "topic": topic, "status": status, "post_statuses": POST_STATUSES}
    return render(request, "community/posts/list.html", context)


def _back(form: Any) -> str:
    target = form.get("back")
    if isinstance(target, str) and target.startswith("/community/") and "//" not in target and "\\" not in target:
        return target
    return "/community/posts"


@router.post("/community/posts/{post_id}/reward")
def reward_post(request: Request, ctx: ConsoleCtx, post_id: IdPath, form: FormDep) -> Response:
    """Give the author points once, with the reason they read."""
    ctx.actor.require(Scope.COMMUNITY_MODERATE)
    t = translator(request)
    raw_points, reason = form.get("points"), form.get("reason")
    text = raw_points.strip() if isinstance(raw_points, str) else ""
    try:
        points = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0
        posts.reward_post(
            ctx.session, actor=ctx.actor, post_id=post_id, points=points,
            reason=reason if isinstance(reason, str) else "", clock=ctx.clock,
        )  # fmt: skip
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect(_back(form))
    flash(request, t("已奖励积分"))
    return redirect(_back(form))


@router.post("/community/posts/{post_id}/{action}")
def moderate_post(request: Request, ctx: ConsoleCtx, post_id: IdPath, action: str, form: FormDep) -> Response:
    """Feature, unfeature, hide or unhide a post."""
    ctx.actor.require(Scope.COMMUNITY_MODERATE)
    posts.moderate(ctx.session, actor=ctx.actor, post_id=post_id, action=action, clock=ctx.clock)
    flash(request, translator(request)("帖子已更新"))
    return redirect(_back(form))


@router.get("/community/post-images/{image_id}")
def post_image(request: Request, ctx: ConsoleCtx, image_id: IdPath) -> Response:
    image = posts.image_for_staff(ctx.session, actor=ctx.actor, image_id=image_id)
    return Response(
        image.data,
        media_type=image.content_type,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
