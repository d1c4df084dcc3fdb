"""HTTP API for the current workspace's settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from siyu.auth.permissions import Scope
from siyu.kit.schemas import Input
from siyu.models import Workspace
from siyu.web.deps import ApiCtx, Ctx, require
from siyu.workspaces import service

router = APIRouter(prefix="/api/v1", tags=["workspace"])
Admin = Annotated[Ctx, Depends(require(Scope.ORG_WRITE))]


class SurvivorshipIn(Input):
    rules: dict[str, str] = Field(default_factory=dict, examples=[{"name": "oldest", "attr.vip_card_no": "oldest"}])


def _workspace(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.id,
        "slug": workspace.slug,
        "name": workspace.name,
        "timezone": workspace.timezone,
        "wecom_corp_id": workspace.wecom_corp_id,
        "survivorship": workspace.survivorship or {},
    }


@router.get("/workspace")
def current_workspace(ctx: ApiCtx) -> dict[str, Any]:
    """The token's workspace and its settings."""
    workspace = ctx.session.get(Workspace, ctx.actor.workspace_id)
    assert workspace is not None
    return _workspace(workspace)


@router.put("/workspace/survivorship")
def set_survivorship(body: SurvivorshipIn, ctx: Admin) -> dict[str, Any]:
    """Per-field survivorship rules for merges and ingestion: "most_recent" (default) or "oldest"."""
    return _workspace(service.set_survivorship(ctx.session, actor=ctx.actor, rules=body.rules, clock=ctx.clock))
