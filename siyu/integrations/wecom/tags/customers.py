"""Customer tags both ways: siyu → WeCom with `mark_tag` on each open friend edge of the customer;
WeCom → siyu with `apply_remote_customer_tags` (called by the callback handler of
`edit_external_contact` with the follow edge's enterprise tag ids).

Loop-free by construction: tags applied from WeCom are written directly (source `wecom`), not
through `siyu.customers.service.tags.assign_tag`, so they fire no listener and no `mark_tag`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.integrations.wecom import status
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import WecomConfig, client_for, get_integration
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.tags.state import load_map
from siyu.kit.clock import Clock
from siyu.models import CustomerTag, Identity, IdentityType, Relationship, Staff, Tag, TagSource

logger = logging.getLogger(__name__)
MARK_KIND = "wecom_mark_tag"


def _external_userid(session: Session, customer_id: int) -> str | None:
    return session.scalar(
        select(Identity.value)
        .where(Identity.customer_id == customer_id, Identity.type == IdentityType.WECOM_EXTERNAL_USERID)
        .order_by(Identity.id)
        .limit(1)
    )


def _open_userids(session: Session, customer_id: int) -> list[str]:
    rows = session.scalars(
        select(Staff.wecom_user_id)
        .join(Relationship, Relationship.staff_id == Staff.id)
        .where(
            Relationship.customer_id == customer_id,
            Relationship.removed_at.is_(None),
            Staff.wecom_user_id.is_not(None),
        )
        .order_by(Staff.wecom_user_id)
        .distinct()
    ).all()
    return [str(r) for r in rows]


def mark_customer_tag(
    session: Session,
    config: WecomConfig,
    *,
    customer_id: int,
    tag_id: int,
    is_added: bool,
    clock: Clock,
    client: WecomClient | None = None,
    external_userid: str | None = None,
) -> dict[str, Any]:
    """Add (or remove) a WeCom-linked tag on every open friend edge of the customer via `mark_tag`.
    `external_userid` (e.g. the sidebar's current chat contact) is used instead of the customer's
    first WeCom identity.

    Returns {"marked": n, "failed": n} or {"skipped": why}. A retryable `WecomError` propagates (the
    job retries); other errors are recorded per edge as issues + `note_error` and the rest go on."""
    tag = session.get(Tag, tag_id)
    if tag is None or tag.workspace_id != config.workspace_id or not tag.wecom_tag_id:
        return {"skipped": "tag not linked to WeCom"}
    external_userid = external_userid or _external_userid(session, customer_id)
    if external_userid is None:
        return {"skipped": "customer has no WeCom external_userid"}
    userids = _open_userids(session, customer_id)
    if not userids:
        return {"skipped": "no open friend edge"}
    client = client or client_for(config)
    key = "add_tag" if is_added else "remove_tag"
    marked = failed = 0
    for userid in userids:
        data = {"userid": userid, "external_userid": external_userid, key: [tag.wecom_tag_id]}
        try:
            client.call("POST", "externalcontact/mark_tag", data=data)
        except WecomError as exc:
            if exc.retryable:
                raise
            failed += 1
            tmap = load_map(session, config.workspace_id, clock)
            tmap.issue("mark_tag_failed", f"customer {customer_id} / {userid} / {tag.name}: {exc}", clock)
            tmap.save()
            status.note_error(session, config.workspace_id, exc, clock)
            continue
        marked += 1
    return {"marked": marked, "failed": failed}


def apply_remote_customer_tags(
    session: Session,
    config: WecomConfig,
    customer_id: int,
    userid: str,
    tag_ids: Iterable[str],
    clock: Clock,
    *,
    client: WecomClient | None = None,
) -> dict[str, Any]:
    """Make the customer's WeCom-sourced siyu tags match the enterprise tags WeCom reports on the
    friend edge with staff `userid` (from `externalcontact/get` → follow_user[].tags, type 1).

    - a reported tag id linked to a siyu tag → the customer gets it (source `wecom`) if missing;
    - an unknown id → one tag pull, then linked if it appeared; else reported in "unknown";
    - a WeCom-linked tag the customer has with source `wecom` that is no longer reported → removed.
      Tags applied in siyu (manual, rule, import) are never removed by WeCom.
    Returns {"added": [tag ids], "removed": [tag ids], "unknown": [wecom ids]}."""
    wanted = {str(t) for t in tag_ids if t}
    workspace_id = config.workspace_id

    def linked() -> dict[str, int]:
        if not wanted:
            return {}
        rows = session.execute(
            select(Tag.wecom_tag_id, Tag.id).where(Tag.workspace_id == workspace_id, Tag.wecom_tag_id.in_(wanted))
        ).all()
        return {str(w): i for w, i in rows}

    mapping = linked()
    if wanted - set(mapping):
        from siyu.integrations.wecom.tags.sync import pull  # sync imports this module's neighbours

        pull(session, config, clock, client=client)
        mapping = linked()
    current = dict(
        session.execute(
            select(CustomerTag.tag_id, CustomerTag.source)
            .join(Tag, Tag.id == CustomerTag.tag_id)
            .where(CustomerTag.customer_id == customer_id, Tag.wecom_tag_id.is_not(None))
        ).all()
    )
    added: list[int] = []
    for tag_id in sorted(set(mapping.values()) - set(current)):
        try:
            with session.begin_nested():
                session.add(
                    CustomerTag(
                        workspace_id=workspace_id,
                        customer_id=customer_id,
                        tag_id=tag_id,
                        source=TagSource.WECOM,
                        assigned_at=clock.now(),
                        assigned_by=f"wecom:{userid}"[:200],
                    )
                )
        except IntegrityError:
            continue  # tagged concurrently
        added.append(tag_id)
    removed = sorted(
        tag_id
        for tag_id, source in current.items()
        if source == TagSource.WECOM and tag_id not in set(mapping.values())
    )
    if removed:
        removed = _not_held_elsewhere(session, config, customer_id, userid, removed, client)
    if removed:
        session.execute(
            delete(CustomerTag).where(CustomerTag.customer_id == customer_id, CustomerTag.tag_id.in_(removed))
        )
    session.flush()
    return {"added": added, "removed": removed, "unknown": sorted(wanted - set(mapping))}


def _not_held_elsewhere(
    session: Session,
    config: WecomConfig,
    customer_id: int,
    userid: str,
    tag_ids: list[int],
    client: WecomClient | None,
) -> list[int]:
    """The tags of `tag_ids` no other open edge of the customer still carries in WeCom (asked with
    `externalcontact/get`, all follow_user pages). With several staff, one staff member dropping a
    tag must not remove it while another still has it. WeCom unreachable (not retryable) → keep all."""
    others = [u for u in _open_userids(session, customer_id) if u != userid]
    if not others:
        return tag_ids
    external_userid = _external_userid(session, customer_id)
    if external_userid is None:
        return tag_ids
    client = client or client_for(config)
    still: set[str] = set()
    cursor = ""
    try:
        while True:
            params = {"external_userid": external_userid} | ({"cursor": cursor} if cursor else {})
            answer = client.call("GET", "externalcontact/get", params=params)
            for follow in answer.get("follow_user") or []:
                if str(follow.get("userid")) in others:
                    still.update(str(t.get("tag_id")) for t in follow.get("tags") or [] if t.get("tag_id"))
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                break
    except WecomError as exc:
        if exc.retryable:
            raise
        return []
    wecom_ids = dict(session.execute(select(Tag.id, Tag.wecom_tag_id).where(Tag.id.in_(tag_ids))).all())
    return [t for t in tag_ids if str(wecom_ids.get(t)) not in still]


def on_customer_tag_changed(
    session: Session, *, workspace_id: int, customer_id: int, tag_id: int, is_added: bool, clock: Clock
) -> None:
    """Listener for siyu tag assignments: queue a `mark_tag` job when the tag is WeCom-linked and
    the workspace has an active integration (the job runs after the commit)."""
    from siyu.jobs.service import enqueue

    integration = get_integration(session, workspace_id)
    if integration is None or not integration.is_active:
        return
    if session.scalar(select(Tag.wecom_tag_id).where(Tag.id == tag_id)) is None:
        return
    enqueue(
        session,
        kind=MARK_KIND,
        args={"customer_id": customer_id, "tag_id": tag_id, "is_added": is_added},
        workspace_id=workspace_id,
        clock=clock,
        created_by="wecom_tags",
    )


BULK_KIND = "wecom_mark_tags_bulk"


def on_bulk_tag_changed(
    session: Session,
    *,
    workspace_id: int,
    customer_ids: Sequence[int],
    tag_id: int,
    is_added: bool,
    clock: Clock,
) -> None:
    """Listener for bulk tag/untag: ONE job per bulk action (the job works through the customers in
    chunks) when the tag is WeCom-linked and the integration is active."""
    from siyu.jobs.service import enqueue

    integration = get_integration(session, workspace_id)
    if integration is None or not integration.is_active or not customer_ids:
        return
    if session.scalar(select(Tag.wecom_tag_id).where(Tag.id == tag_id)) is None:
        return
    enqueue(
        session,
        kind=BULK_KIND,
        args={"customer_ids": sorted(set(customer_ids)), "tag_id": tag_id, "is_added": is_added},
        workspace_id=workspace_id,
        clock=clock,
        created_by="wecom_tags",
    )


def _register() -> None:
    from siyu.customers.service import tags as tag_service

    tag_service.register_tag_listener(on_customer_tag_changed)
    tag_service.register_bulk_tag_listener(on_bulk_tag_changed)


_register()
