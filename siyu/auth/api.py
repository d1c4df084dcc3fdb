"""HTTP API for the caller's identity and API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, Field

from siyu.auth import service
from siyu.auth.permissions import Scope
from siyu.kit.schemas import Input
from siyu.models import ApiToken
from siyu.web.deps import ApiCtx, Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["auth"])
TokenAdmin = Annotated[Ctx, Depends(require(Scope.TOKENS_ADMIN))]


class TokenIn(Input):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1)
    expires_at: AwareDatetime | None = None


def _token(t: ApiToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "scopes": t.scopes,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "last_used_at": t.last_used_at,
        "revoked_at": t.revoked_at,
    }


@router.get("/me")
def me(ctx: ApiCtx) -> dict[str, Any]:
    """Who the bearer token is: its workspace and scopes."""
    return {
        "kind": ctx.actor.kind,
        "label": ctx.actor.label,
        "workspace_id": ctx.actor.workspace_id,
        "scopes": sorted(ctx.actor.scopes),
    }


@router.get("/tokens")
def list_tokens(ctx: TokenAdmin) -> list[dict[str, Any]]:
    return [_token(t) for t in service.list_tokens(ctx.session, workspace_id=ctx.actor.workspace_id)]


@router.post("/tokens", status_code=201)
def create_token(body: TokenIn, ctx: TokenAdmin) -> dict[str, Any]:
    """Issue a token in this workspace; the secret is in the response only."""
    issued = service.create_token(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        name=body.name,
        scopes=body.scopes,
        actor=ctx.actor,
        clock=ctx.clock,
        expires_at=body.expires_at,
    )
    return _token(issued.token) | {"token": issued.secret}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: IdPath, ctx: TokenAdmin) -> dict[str, Any]:
    return _token(service.revoke_token(ctx.session, token_id=token_id, actor=ctx.actor, clock=ctx.clock))
