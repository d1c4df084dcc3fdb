"""HTTP API for live codes, their QR images, scans, adds and the groups group codes route to."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from pydantic import Field
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.livecodes import groups as group_service
from siyu.livecodes import reports, service
from siyu.livecodes.adds import record_add
from siyu.livecodes.qr import QrFormat, check_logo, qr_zip, render_qr, safe_filename
from siyu.livecodes.scan import scan_code, workspace_tz
from siyu.livecodes.schemas import AddIn, GroupIn, LiveCodeIn
from siyu.livecodes.state import encode_state
from siyu.models import CommunityGroup, LiveCode
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["live codes"])
Reader = Annotated[Ctx, Depends(require(Scope.ACQUISITION_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ACQUISITION_WRITE))]
CustomerWriter = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_WRITE))]
SizeQuery = Annotated[str, Query(pattern="^(s|m|l)$", description="s 300px, m 600px, l 1200px")]


def public_url(request: Request, code: LiveCode) -> str:
    return str(request.base_url).rstrip("/") + f"/q/{code.slug}"


def code_out(ctx: Ctx, request: Request, code: LiveCode) -> dict[str, Any]:
    tz = workspace_tz(ctx.session, code.workspace_id)
    routes = service.routes_of(ctx.session, code.id)
    taken = reports.taken_today(ctx.session, [r.id for r in routes], now=ctx.clock.now(), tz=tz)
    figures = reports.figures_by_code(ctx.session, [code.id], now=ctx.clock.now(), tz=tz)[code.id]
    out: dict[str, Any] = {
        "id": code.id,
        "slug": code.slug,
        "url": public_url(request, code),
        "name": code.name,
        "kind": code.kind,
        "channel_id": code.channel_id,
        "store_id": code.store_id,
        "experiment_id": code.experiment_id,
        "state": encode_state(code.id, code.channel_id),
        "rotation": code.rotation,
        "is_sticky": code.is_sticky,
        "schedule": code.schedule,
        "welcome": code.welcome,
        "tag_ids": service.tag_ids_of(ctx.session, code.id),
        "group_warn_percent": code.group_warn_percent,
        "has_logo": code.logo_png is not None,
        "expires_at": code.expires_at,
        "created_at": code.created_at,
        "routes": [
            {
                "id": r.id,
                "staff_id": r.staff_id,
                "group_id": r.group_id,
                "weight": r.weight,
                "daily_cap": r.daily_cap,
                "taken_today": taken.get(r.id, 0),
                "shift": r.shift,
                "is_backup": r.is_backup,
                "is_active": r.is_active,
                "contact_qr_url": r.contact_qr_url,
            }
            for r in routes
        ],
        "figures": {
            "scans": figures.scans,
            "unique_visitors": figures.unique_visitors,
            "adds": figures.adds,
            "add_rate": figures.add_rate,
            "scans_today": figures.scans_today,
            "adds_today": figures.adds_today,
        },
    }
    if code.kind == "group":
        out["capacity"] = group_service.group_capacity(ctx.session, code)
    return out


@router.get("/live-codes")
def list_codes(request: Request, ctx: Reader) -> dict[str, Any]:
    return {"items": [code_out(ctx, request, c) for c in service.list_live_codes(ctx.session, ctx.actor.workspace_id)]}


@router.post("/live-codes", status_code=201)
def create_code(request: Request, body: LiveCodeIn, ctx: Writer) -> dict[str, Any]:
    code = service.create_live_code(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock)
    return code_out(ctx, request, code)


@router.get("/live-codes/{code_id}")
def get_code(request: Request, code_id: IdPath, ctx: Reader) -> dict[str, Any]:
    return code_out(ctx, request, service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id))


@router.put("/live-codes/{code_id}")
def update_code(request: Request, code_id: IdPath, body: LiveCodeIn, ctx: Writer) -> dict[str, Any]:
    code = service.update_live_code(ctx.session, actor=ctx.actor, code_id=code_id, data=body, clock=ctx.clock)
    return code_out(ctx, request, code)


@router.delete("/live-codes/{code_id}", status_code=204)
def delete_code(code_id: IdPath, ctx: Writer) -> Response:
    service.delete_live_code(ctx.session, actor=ctx.actor, code_id=code_id, clock=ctx.clock)
    return Response(status_code=204)


class StoreCodesIn(Input):
    store_ids: list[DbId] = Field(min_length=1, max_length=500)
    channel_id: DbId | None = None
    daily_cap: int | None = Field(default=None, ge=1)


@router.post("/live-codes/store-codes", status_code=201)
def create_store_codes(request: Request, body: StoreCodesIn, ctx: Writer) -> dict[str, Any]:
    """One store code per store, routing to that store's active staff."""
    codes = service.create_store_codes(
        ctx.session,
        actor=ctx.actor,
        store_ids=body.store_ids,
        channel_id=body.channel_id,
        daily_cap=body.daily_cap,
        clock=ctx.clock,
    )
    return {"items": [code_out(ctx, request, c) for c in codes]}


@router.get("/live-codes/{code_id}/qr")
def code_qr(
    request: Request, code_id: IdPath, ctx: Reader, format: QrFormat = QrFormat.PNG, size: SizeQuery = "m"
) -> Response:
    """The printable QR image of the code's stable URL."""
    code = service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id)
    image = render_qr(public_url(request, code), fmt=format, size=size, logo=code.logo_png)
    media = "image/png" if format == QrFormat.PNG else "image/svg+xml"
    filename = f"{safe_filename(code.name)}.{format}"
    return Response(image, media_type=media, headers={"Content-Disposition": _attachment(filename)})


def _attachment(filename: str) -> str:
    return f"attachment; filename=\"qr.{filename.rsplit('.', 1)[-1]}\"; filename*=UTF-8''{quote(filename)}"


class QrZipIn(Input):
    ids: list[DbId] = Field(min_length=1, max_length=500)
    format: QrFormat = QrFormat.PNG
    size: str = Field(default="m", pattern="^(s|m|l)$")


@router.post("/live-codes/qr.zip")
def codes_zip(request: Request, body: QrZipIn, ctx: Reader) -> Response:
    """QR images of several codes in one zip, for the printer."""
    codes = [service.get_live_code(ctx.session, ctx.actor.workspace_id, i) for i in dict.fromkeys(body.ids)]
    archive = qr_zip([(c.name, public_url(request, c), c.logo_png) for c in codes], fmt=body.format, size=body.size)
    return Response(archive, media_type="application/zip", headers={"Content-Disposition": _attachment("活码.zip")})


@router.put("/live-codes/{code_id}/logo", status_code=204)
def set_logo(code_id: IdPath, file: UploadFile, ctx: Writer) -> Response:
    """Set the centre logo (PNG/JPEG, at most 512 KiB)."""
    data = file.file.read(512 * 1024 + 1)
    service.set_logo(ctx.session, actor=ctx.actor, code_id=code_id, png=check_logo(data), clock=ctx.clock)
    return Response(status_code=204)


@router.delete("/live-codes/{code_id}/logo", status_code=204)
def clear_logo(code_id: IdPath, ctx: Writer) -> Response:
    service.set_logo(ctx.session, actor=ctx.actor, code_id=code_id, png=None, clock=ctx.clock)
    return Response(status_code=204)


def scan_out(scan: Any) -> dict[str, Any]:
    return {
        "id": scan.id,
        "scanned_at": scan.scanned_at,
        "outcome": scan.outcome,
        "route_id": scan.route_id,
        "staff_id": scan.staff_id,
        "group_id": scan.group_id,
        "store_id": scan.store_id,
        "channel_id": scan.channel_id,
        "variant": scan.variant,
        "state": scan.state,
        "customer_id": scan.customer_id,
        "added_at": scan.added_at,
    }


@router.get("/live-codes/{code_id}/scans")
def list_scans(
    code_id: IdPath, ctx: Reader, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, Any]:
    service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id, include_deleted=True)
    page = reports.scan_log(
        ctx.session, workspace_id=ctx.actor.workspace_id, live_code_id=code_id, cursor=cursor, limit=limit
    )
    return {"items": [scan_out(s) for s in page.items], "next_cursor": page.next_cursor}


class ScanIn(Input):
    """A scan seen by the brand's own landing page (mini-program, H5) instead of `/q/{slug}`."""

    visitor_id: str = Field(min_length=8, max_length=64, pattern="^[A-Za-z0-9_-]+$")
    store_id: DbId | None = None
    user_agent: str | None = Field(default=None, max_length=300)


@router.post("/live-codes/{code_id}/scans", status_code=201)
def create_scan(code_id: IdPath, body: ScanIn, ctx: Writer) -> dict[str, Any]:
    """Route a scan and record it; the answer names the staff member / group and the state to show."""
    code = service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id, include_deleted=True)
    result = scan_code(
        ctx.session,
        code,
        visitor_id=body.visitor_id,
        at=ctx.clock.now(),
        user_agent=body.user_agent,
        store_id=body.store_id,
    )
    candidate = result.candidate
    return {
        "outcome": result.outcome,
        "scan": scan_out(result.scan) if result.scan else None,
        "staff": {"id": candidate.staff.id, "name": candidate.staff.name} if candidate and candidate.staff else None,
        "group": (
            {"id": candidate.group.id, "name": candidate.group.name, "join_url": candidate.group.join_url}
            if candidate and candidate.group
            else None
        ),
        "hook": result.hook,
        "variant": result.variant.key if result.variant else None,
        "state": result.state,
        "store_choices": [{"id": s.id, "name": s.name, "city": s.city} for s in result.store_choices],
    }


@router.post("/live-code-adds", status_code=201)
def report_add(body: AddIn, ctx: CustomerWriter) -> dict[str, Any]:
    """A customer added a staff member (what WeCom's add_external_contact callback reports).

    Attributed through `state`; tags, welcome message and experiment conversion follow. Reporting
    the same add again changes nothing (`already_friends: true`).
    """
    outcome = record_add(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        staff_id=body.staff_id,
        external_userid=body.external_userid,
        state=body.state,
        at=body.added_at or ctx.clock.now(),
        clock=ctx.clock,
        scan_id=body.scan_id,
        name=body.name,
        phone=body.phone,
    )
    return {
        "customer_id": outcome.customer.id,
        "relationship_id": outcome.relationship.id,
        "is_new_customer": outcome.is_new_customer,
        "already_friends": outcome.already_friends,
        "live_code_id": outcome.live_code.id if outcome.live_code else None,
        "channel_id": outcome.channel.id if outcome.channel else None,
        "variant": outcome.variant,
        "scan_id": outcome.scan.id if outcome.scan else None,
        "tags_applied": outcome.tags_applied,
        "welcome": outcome.welcome.as_dict() if outcome.welcome else None,
    }


def group_out(group: CommunityGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "join_url": group.join_url,
        "member_limit": group.member_limit,
        "member_count": group.member_count,
        "owner_staff_id": group.owner_staff_id,
        "wecom_chat_id": group.wecom_chat_id,
        "is_active": group.is_active,
    }


# `GET/POST /api/v1/groups` belong to the community groups API (`siyu.community.groups.api`), which
# lists the same shape; the live-code area keeps only its old PUT for compatibility.


@router.put("/groups/{group_id}")
def update_group(group_id: IdPath, body: GroupIn, ctx: Writer) -> dict[str, Any]:
    return group_out(
        group_service.update_group(ctx.session, actor=ctx.actor, group_id=group_id, data=body, clock=ctx.clock)
    )
