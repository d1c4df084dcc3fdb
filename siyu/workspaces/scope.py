"""Workspace scoping enforced on the session, beneath every repository.

A session bound with `bind_workspace(session, ws_id)`:
- adds `workspace_id = ws_id` to every ORM SELECT, UPDATE and DELETE touching a
  `WorkspaceScoped` table (including joins and relationship loads), and
- stamps new scoped rows with `ws_id` and refuses to flush a row of another workspace.

Repositories scope their queries explicitly too; this is the net under them, so that no code
path — a forgotten filter, a `session.get`, a lazy load — can read or write across brands.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from siyu.kit.errors import PermissionDenied
from siyu.models.base import WorkspaceScoped

_KEY = "workspace_id"


def bind_workspace(session: Session, workspace_id: int) -> Session:
    """Scope `session` to one workspace for the rest of its life."""
    bound = session.info.get(_KEY)
    if bound is not None and bound != workspace_id:
        raise PermissionDenied("session already bound to another workspace")
    session.info[_KEY] = workspace_id
    return session


@event.listens_for(Session, "do_orm_execute")
def _scope_statements(state: ORMExecuteState) -> None:
    workspace_id = state.session.info.get(_KEY)
    if workspace_id is None:
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("siyu_unscoped"):
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            WorkspaceScoped,
            lambda cls: cls.workspace_id == workspace_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_and_check(session: Session, _flush_context: Any, _instances: Any) -> None:
    workspace_id = session.info.get(_KEY)
    if workspace_id is None:
        return
    for obj in session.new:
        if isinstance(obj, WorkspaceScoped):
            if obj.workspace_id is None:
                obj.workspace_id = workspace_id
            elif obj.workspace_id != workspace_id:
                raise PermissionDenied("row belongs to another workspace")
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, WorkspaceScoped) and obj.workspace_id != workspace_id:
            raise PermissionDenied("row belongs to another workspace")
