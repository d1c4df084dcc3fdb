"""Small helpers shared by console views: redirects, form errors and error pages as HTML."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from siyu.kit.errors import DomainError
from siyu.web.deps import Ctx
from siyu.web.templating import render, translator


def error_title(request: Request, code: str, status_code: int) -> str:
    """A translated headline for an error code (the service message follows it)."""
    _ = translator(request)
    titles = {
        "forbidden": _("没有权限"),
        "unauthenticated": _("请先登录"),
        "not_found": _("未找到"),
        "customer_not_found": _("未找到该客户"),
        "conflict": _("操作冲突"),
        "merge_not_undoable": _("无法撤销合并"),
        "customer_erased": _("该客户的个人信息已删除"),
        "invalid_input": _("输入有误"),
        "invalid_identity": _("身份标识无效"),
        "invalid_file": _("文件无法读取"),
        "payload_too_large": _("文件过大"),
    }
    if code in titles:
        return titles[code]
    if status_code == 403:
        return titles["forbidden"]
    if status_code == 404:
        return titles["not_found"]
    if status_code >= 500:
        return _("出错了，请稍后再试")
    return _("请求无法完成")


def error_text(request: Request, exc: DomainError) -> str:
    """One line for a form: the translated headline and the service's message."""
    return f"{error_title(request, exc.code, exc.status_code)}: {exc.message}"


def error_page(request: Request, *, status_code: int, code: str, message: str) -> Response:
    """The console's error page (403, 404, 4xx, 500) instead of a JSON body."""
    return render(
        request,
        "error.html",
        {"status_code": status_code, "title": error_title(request, code, status_code), "message": message},
        status_code=status_code,
    )


def form_error(
    request: Request,
    ctx: Ctx,
    exc: DomainError,
    template: str,
    build: Callable[[], dict[str, Any]],
    *,
    field: str = "form",
) -> Response:
    """Undo what the failed action wrote, then show the page again with the message by its form."""
    ctx.session.rollback()
    context = build()
    context.setdefault("errors", {})[field] = error_text(request, exc)
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    return render(request, template, context, status_code=status)


def redirect(url: str) -> Response:
    """After a successful POST: go to `url` with GET (post/redirect/get)."""
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only local paths are followed after login or a switch (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
