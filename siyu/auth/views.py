"""Console pages for signing in, switching workspace and language, and managing users and tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from siyu.audit.service import record
from siyu.auth import service
from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput, PermissionDenied, Unauthenticated
from siyu.kit.i18n import normalize_locale
from siyu.kit.ids import MAX_ID, parse_id
from siyu.models import Role
from siyu.ops.ratelimit import login_verdict
from siyu.org.service import list_staff, list_stores
from siyu.web.deps import ConsoleCtx, Ctx, IdPath, check_csrf, clock_of, database
from siyu.web.pages import form_error, redirect, safe_next
from siyu.web.templating import flash, render, translator
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)
KEEP_ON_LOGIN = ("locale",)


async def csrf_ok(request: Request) -> bool:
    """Like `check_csrf`, but lets the login form answer a stale token itself."""
    try:
        await check_csrf(request)
    except PermissionDenied:
        return False
    return True


def _login_page(
    request: Request, *, next_url: str, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    return render(
        request,
        "login.html",
        {"next": next_url, "email": email, "errors": {"form": error} if error else {}},
        status_code=status,
    )


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, next_url=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    csrf_valid: Annotated[bool, Depends(csrf_ok)],
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check e-mail and password; enter the first workspace (by name) the user belongs to."""
    _ = translator(request)
    next_url = safe_next(next)
    verdict = login_verdict(request, email)
    if not verdict.allowed:  # counted before the password hash is even computed
        page = _login_page(request, next_url=next_url, email=email, error=_("尝试过于频繁，请稍后再试"), status=429)
        page.headers["Retry-After"] = str(verdict.retry_after_s)
        return page
    if not csrf_valid:
        return _login_page(request, next_url=next_url, email=email, error=_("页面已过期，请重新提交"), status=400)
    clock = clock_of(request)
    try:
        with database(request).transaction() as session:
            user = service.authenticate_password(session, email=email, password=password, clock=clock)
            memberships = service.memberships_of(session, user.id)
            if not memberships:
                raise PermissionDenied("no workspace")
            workspace = memberships[0][1]
            actor = service.actor_for_user(session, user=user, workspace_id=workspace.id)
            bind_workspace(session, workspace.id)
            record(session, actor, action="login", entity_type="user", entity_id=user.id, clock=clock)
            user_id, workspace_id = user.id, workspace.id
    except Unauthenticated:
        return _login_page(request, next_url=next_url, email=email, error=_("邮箱或密码错误"), status=401)
    except PermissionDenied:
        return _login_page(request, next_url=next_url, email=email, error=_("该账号还没有可进入的品牌"), status=403)
    kept = {k: request.session[k] for k in KEEP_ON_LOGIN if k in request.session}
    request.session.clear()  # a fresh CSRF token for the signed-in session
    request.session.update(kept, user_id=user_id, workspace_id=workspace_id)
    return redirect(next_url)


@router.post("/logout")
def logout(request: Request, _csrf: Annotated[None, Depends(check_csrf)]) -> Response:
    kept = {k: request.session[k] for k in KEEP_ON_LOGIN if k in request.session}
    request.session.clear()
    request.session.update(kept)
    return redirect("/login")


@router.post("/workspaces/switch")
def switch_workspace(
    request: Request, ctx: ConsoleCtx, workspace_id: Annotated[int, Form(gt=0, le=MAX_ID)]
) -> Response:
    """Move to another workspace the user has a role in."""
    if workspace_id not in {w.id for w in request.state.workspaces}:
        raise PermissionDenied("no access to this workspace")
    request.session["workspace_id"] = workspace_id
    return redirect("/")


@router.post("/locale")
def set_locale(
    request: Request,
    _csrf: Annotated[None, Depends(check_csrf)],
    locale: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    request.session["locale"] = normalize_locale(locale)
    return redirect(safe_next(next))


# --- users -------------------------------------------------------------------------------------


def _users_context(ctx: Ctx, **extra: Any) -> dict[str, Any]:
    ws = ctx.actor.workspace_id
    staff = list_staff(ctx.session, workspace_id=ws)
    stores = list_stores(ctx.session, workspace_id=ws)
    return {
        "members": service.list_members(ctx.session, workspace_id=ws),
        "roles": [str(r) for r in Role],
        "staff": staff,
        "stores": stores,
        "staff_names": {s.id: s.name for s in staff},
        "store_names": {s.id: s.name for s in stores},
        "errors": {},
        "values": {},
    } | extra


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        raise InvalidInput(f"unknown role {value!r}", details={"field": "role"}) from exc


@router.get("/settings/users")
def users_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.USERS_ADMIN)
    return render(request, "settings/users.html", _users_context(ctx))


@router.post("/settings/users")
def create_user(
    request: Request,
    ctx: ConsoleCtx,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "operator",
    staff_id: Annotated[str, Form()] = "",
    store_id: Annotated[str, Form()] = "",
) -> Response:
    ctx.actor.require(Scope.USERS_ADMIN)
    _ = translator(request)
    try:
        service.add_member(
            ctx.session,
            actor=ctx.actor,
            email=email,
            name=name,
            password=password,
            role=_role(role),
            staff_id=parse_id(staff_id),
            store_id=parse_id(store_id),
            clock=ctx.clock,
        )
    except DomainError as exc:
        values = {"email": email, "name": name, "role": role, "staff_id": staff_id, "store_id": store_id}
        return form_error(request, ctx, exc, "settings/users.html", lambda: _users_context(ctx, values=values))
    flash(request, _("用户已创建"))
    return redirect("/settings/users")


@router.post("/settings/users/{user_id}/role")
def change_role(
    request: Request,
    ctx: ConsoleCtx,
    user_id: IdPath,
    role: Annotated[str, Form()],
    staff_id: Annotated[str, Form()] = "",
    store_id: Annotated[str, Form()] = "",
) -> Response:
    ctx.actor.require(Scope.USERS_ADMIN)
    _ = translator(request)
    try:
        service.change_role(
            ctx.session,
            actor=ctx.actor,
            user_id=user_id,
            role=_role(role),
            staff_id=parse_id(staff_id),
            store_id=parse_id(store_id),
            clock=ctx.clock,
        )
    except DomainError as exc:
        return form_error(
            request, ctx, exc, "settings/users.html", lambda: _users_context(ctx), field=f"user-{user_id}"
        )
    flash(request, _("角色已更新"))
    return redirect("/settings/users")


@router.post("/settings/users/{user_id}/remove")
def remove_user(request: Request, ctx: ConsoleCtx, user_id: IdPath) -> Response:
    ctx.actor.require(Scope.USERS_ADMIN)
    _ = translator(request)
    try:
        service.remove_member(ctx.session, actor=ctx.actor, user_id=user_id, clock=ctx.clock)
    except DomainError as exc:
        return form_error(
            request, ctx, exc, "settings/users.html", lambda: _users_context(ctx), field=f"user-{user_id}"
        )
    flash(request, _("已移除该用户在本品牌的权限"))
    return redirect("/settings/users")


# --- API tokens --------------------------------------------------------------------------------


def _tokens_context(ctx: Ctx, **extra: Any) -> dict[str, Any]:
    return {
        "tokens": service.list_tokens(ctx.session, workspace_id=ctx.actor.workspace_id),
        "scopes": [s for s in service.scope_names() if ctx.actor.can(s)],
        "secret": None,
        "errors": {},
        "values": {"name": "", "scopes": []},
    } | extra


@router.get("/settings/tokens")
def tokens_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.TOKENS_ADMIN)
    return render(request, "settings/tokens.html", _tokens_context(ctx))


@router.post("/settings/tokens")
def create_token(
    request: Request,
    ctx: ConsoleCtx,
    name: Annotated[str, Form()] = "",
    scopes: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI form list
) -> Response:
    """Issue a token; its secret is on this response only."""
    ctx.actor.require(Scope.TOKENS_ADMIN)
    try:
        issued = service.create_token(
            ctx.session,
            workspace_id=ctx.actor.workspace_id,
            name=name,
            scopes=scopes,
            actor=ctx.actor,
            clock=ctx.clock,
        )
    except DomainError as exc:
        values = {"name": name, "scopes": scopes}
        return form_error(request, ctx, exc, "settings/tokens.html", lambda: _tokens_context(ctx, values=values))
    return render(
        request,
        "settings/tokens.html",
        _tokens_context(ctx, secret=issued.secret),
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(request: Request, ctx: ConsoleCtx, token_id: IdPath) -> Response:
    ctx.actor.require(Scope.TOKENS_ADMIN)
    service.revoke_token(ctx.session, token_id=token_id, actor=ctx.actor, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("令牌已吊销"))
    return redirect("/settings/tokens")
