"""Member H5 pages of community resources: the library (`/m/resources`), one resource (a read,
counted once a day), and a file's download (counted once a day).

A resource the member may not see — a draft, archived, another tier's or segment's — is the same
friendly 404 as one that does not exist."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.community.resources import service
from siyu.community.resources.api import file_response
from siyu.community.resources.errors import ResourceNotFound
from siyu.kit.ids import parse_id
from siyu.loyalty.h5.views.common import MemberDep, MemberRoute, clock_of, member_transaction, render_member, translator
from siyu.models.resource import ResourceKind

router = APIRouter(route_class=MemberRoute)


def kind_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {ResourceKind.GUIDE: _("攻略"), ResourceKind.FILE: _("文件"), ResourceKind.NEWS: _("一手信息")}


def _resource_id(value: str) -> int:
    """A resource id from the path; anything else is a resource that does not exist (404 page)."""
    resource_id = parse_id(value) if len(value) <= 19 else None
    if resource_id is None:
        raise ResourceNotFound("no such resource")
    return resource_id


def _kind(value: str | None) -> ResourceKind | None:
    try:
        return ResourceKind(value) if value else None
    except ValueError:
        return None


@router.get("/resources")
def library(request: Request, member: MemberDep, kind: str | None = None) -> Response:
    """The resources this member may see, pinned then newest first; `?kind=guide|file|news` filters."""
    chosen = _kind(kind)
    with member_transaction(request, member, read_only=True) as session:
        rows = service.visible_resources(
            session,
            workspace_id=member.workspace_id,
            customer_id=member.customer_id,
            clock=clock_of(request),
            kind=chosen,
        )
        context = {"rows": rows, "kind": str(chosen) if chosen else "", "kinds": kind_labels(translator(request))}
        return render_member(request, session, member, "member/resources.html", context, tab="home")


@router.get("/resources/{resource_id}")
def resource_page(request: Request, resource_id: str, member: MemberDep) -> Response:
    """One resource; opening it counts one read for the member today (again the same day: not counted)."""
    clock = clock_of(request)
    with member_transaction(request, member) as session:
        resource = service.member_resource(
            session,
            workspace_id=member.workspace_id,
            customer_id=member.customer_id,
            resource_id=_resource_id(resource_id),
            clock=clock,
        )
        service.record_view(
            session, resource=resource, customer_id=member.customer_id, action=service.READ, clock=clock
        )
        context = {"resource": resource, "kinds": kind_labels(translator(request))}
        return render_member(request, session, member, "member/resource.html", context, tab="home")


@router.get("/resources/{resource_id}/download")
def download(request: Request, resource_id: str, member: MemberDep) -> Response:
    """The file of a file resource, counted as one download for the member today."""
    clock = clock_of(request)
    with member_transaction(request, member) as session:
        resource = service.member_resource(
            session,
            workspace_id=member.workspace_id,
            customer_id=member.customer_id,
            resource_id=_resource_id(resource_id),
            clock=clock,
        )
        if resource.file_data is None:
            raise ResourceNotFound("this resource has no file")
        service.record_view(
            session, resource=resource, customer_id=member.customer_id, action=service.DOWNLOAD, clock=clock
        )
        return file_response(resource)
