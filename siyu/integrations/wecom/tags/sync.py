"""Two-way sync of enterprise tags (企业客户标签) between siyu's tag groups/tags and WeCom's.

- `pull`: takes the map lock, then `get_corp_tag_list` → siyu. New WeCom groups/tags are created
  in siyu (or linked to a siyu group/tag of the same name); renames follow `state.resolve_name`; a
  tag deleted in WeCom is deleted in siyu (its customer tags go with it), a group deleted in WeCom
  is deleted in siyu once it holds no siyu-only tag (else just unlinked).
- `push`: siyu → WeCom, after a pull: tags/groups deleted in siyu → `del_corp_tag` (on 40068 one
  id at a time); renamed in siyu → `edit_corp_tag`; siyu tags without a WeCom id in a linked group
  or a group the operator opted in (`opt_in_group`) → `add_corp_tag` (one tag per call after 40071).
- Mass-delete guard, both ways: an empty WeCom answer never deletes; more than `MASS_DELETE` tags,
  or more than `MASS_SHARE` of the map (and more than `SMALL_DELETE`), are held with a
  `mass_delete_blocked` issue until the operator confirms (`allow_mass_delete=True`). A WeCom-born
  group deleted in siyu is only unlinked (held, WeCom keeps it) unless the operator confirms.

Errors: a retryable `WecomError` propagates (the job fails and the next run retries); any other is
recorded as an issue on the mapping (shown on the tag page) and on the integration
(`status.note_error`), and the sync goes on with the next item.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.integrations.wecom import status
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.tags.customers import (
    apply_remote_customer_tags as apply_remote_customer_tags,  # re-exported: the callback handler imports it here
)
from siyu.integrations.wecom.tags.state import SIYU, WECOM, TagMap, load_map, resolve_name
from siyu.kit.clock import Clock
from siyu.models import CustomerTag, Tag, TagGroup

logger = logging.getLogger(__name__)
INVALID_TAG = 40068
DUPLICATE_NAME = 40071
MASS_DELETE = 10
MASS_SHARE = 0.2
SMALL_DELETE = 2


def _actor(workspace_id: int) -> Actor:
    return Actor.system(workspace_id, label="wecom_tags")


def _fail(session: Session, tmap: TagMap, config: WecomConfig, kind: str, exc: WecomError, clock: Clock) -> None:
    if exc.retryable:
        raise exc
    tmap.issue(kind, str(exc), clock)
    status.note_error(session, config.workspace_id, exc, clock)


def _name_taken(session: Session, workspace_id: int, name: str, *, group_id: int | None) -> bool:
    if group_id is None:
        statement = select(TagGroup.id).where(TagGroup.workspace_id == workspace_id, TagGroup.name == name)
    else:
        statement = select(Tag.id).where(Tag.workspace_id == workspace_id, Tag.group_id == group_id, Tag.name == name)
    return session.scalar(statement.limit(1)) is not None


def _delete_tag(session: Session, tag: Tag, clock: Clock) -> None:
    count = session.scalar(select(func.count()).where(CustomerTag.tag_id == tag.id))
    record(
        session,
        _actor(tag.workspace_id),
        action="delete",
        entity_type="tag",
        entity_id=tag.id,
        before={"name": tag.name, "customers": count, "wecom_tag_id": tag.wecom_tag_id, "reason": "deleted in WeCom"},
        clock=clock,
    )
    session.delete(tag)


def _pull_group(
    session: Session, tmap: TagMap, workspace_id: int, group: dict[str, Any], clock: Clock, counts: dict[str, int]
) -> TagGroup | None:
    gid, wecom_name = str(group["group_id"]), str(group["group_name"]).strip()[:100]
    entry = tmap.groups.get(gid)
    tag_group = tmap.group_by_wecom_id(session, gid)
    if entry is not None and tag_group is None:
        return None  # deleted in siyu since the last sync: the push deletes (or holds) it in WeCom
    if tag_group is None:
        tag_group = session.scalar(
            select(TagGroup).where(TagGroup.workspace_id == workspace_id, TagGroup.name == wecom_name)
        )
        if tag_group is None:
            tag_group = TagGroup(workspace_id=workspace_id, name=wecom_name, sort_order=int(group.get("order") or 0))
            session.add(tag_group)
            session.flush()
            counts["groups_created"] += 1
        else:
            counts["groups_linked"] += 1
        tag_group.wecom_group_id = gid
        tmap.groups[gid] = {"name": wecom_name, "origin": WECOM}
        return tag_group
    assert entry is not None
    winner, conflict = resolve_name(tag_group.name, wecom_name, entry["name"], entry.get("origin", WECOM))
    if conflict:
        tmap.issue("rename_conflict", f"group {tag_group.name!r} / WeCom {wecom_name!r}: {winner!r} kept", clock)
    entry["name"] = wecom_name
    if winner != tag_group.name:
        if _name_taken(session, workspace_id, winner, group_id=None):
            tmap.issue("name_taken", f"group {tag_group.name!r} cannot be renamed to {winner!r}", clock)
            entry["name"] = tag_group.name
        else:
            tag_group.name = winner
            counts["renamed"] += 1
    return tag_group


def _pull_tag(
    session: Session,
    tmap: TagMap,
    tag_group: TagGroup,
    gid: str,
    item: dict[str, Any],
    clock: Clock,
    counts: dict[str, int],
) -> None:
    tid, wecom_name = str(item["id"]), str(item["name"]).strip()[:100]
    entry = tmap.tags.get(tid)
    tag = session.get(Tag, entry["tag_id"]) if entry else None
    if entry is not None and tag is None:
        return  # deleted in siyu since the last sync: the push deletes it in WeCom
    if tag is None:
        tag = session.scalar(select(Tag).where(Tag.workspace_id == tag_group.workspace_id, Tag.wecom_tag_id == tid))
    if tag is None:
        tag = session.scalar(
            select(Tag).where(
                Tag.workspace_id == tag_group.workspace_id,
                Tag.group_id == tag_group.id,
                Tag.name == wecom_name,
                Tag.wecom_tag_id.is_(None),
            )
        )
        if tag is None:
            tag = Tag(workspace_id=tag_group.workspace_id, group_id=tag_group.id, name=wecom_name)
            session.add(tag)
            counts["tags_created"] += 1
        else:
            counts["tags_linked"] += 1
        tag.wecom_tag_id = tid
        session.flush()
        tmap.tags[tid] = {"tag_id": tag.id, "name": wecom_name, "group": gid, "origin": WECOM}
        return
    if entry is None:
        entry = {"tag_id": tag.id, "name": None, "group": gid, "origin": WECOM}
        tmap.tags[tid] = entry
    tag.wecom_tag_id = tid
    winner, conflict = resolve_name(tag.name, wecom_name, entry["name"], entry.get("origin", WECOM))
    if conflict:
        tmap.issue("rename_conflict", f"tag {tag.name!r} / WeCom {wecom_name!r}: {winner!r} kept", clock)
    entry["name"], entry["group"] = wecom_name, gid
    if winner != tag.name:
        if _name_taken(session, tag.workspace_id, winner, group_id=tag.group_id):
            tmap.issue("name_taken", f"tag {tag.name!r} cannot be renamed to {winner!r}", clock)
            entry["name"] = tag.name
        else:
            tag.name = winner
            counts["renamed"] += 1


def _counts(*names: str) -> dict[str, int]:
    return dict.fromkeys(names, 0)


def _too_many(count: int, mapped: int) -> bool:
    return count > MASS_DELETE or (count > SMALL_DELETE and count > MASS_SHARE * max(mapped, 1))


def pull(
    session: Session,
    config: WecomConfig,
    clock: Clock,
    *,
    client: WecomClient | None = None,
    allow_mass_delete: bool = False,
) -> dict[str, int]:
    """WeCom's enterprise tags into siyu (see the module docstring); returns what changed.

    The map is locked before WeCom is asked, so a concurrent push cannot create tags this (older)
    answer does not list and see them deleted."""
    client = client or client_for(config)
    workspace_id = config.workspace_id
    tmap = load_map(session, workspace_id, clock, lock=True)
    answer = client.call("POST", "externalcontact/get_corp_tag_list", data={})
    counts = _counts("groups_created", "groups_linked", "tags_created", "tags_linked", "renamed", "deleted")
    seen_groups: set[str] = set()
    seen_tags: set[str] = set()
    listed = [g for g in answer.get("tag_group") or [] if not g.get("deleted")]
    for group in listed:
        gid = str(group["group_id"])
        seen_groups.add(gid)
        tag_group = _pull_group(session, tmap, workspace_id, group, clock, counts)
        for item in group.get("tag") or []:
            if item.get("deleted"):
                continue
            seen_tags.add(str(item["id"]))
            if tag_group is not None:
                _pull_tag(session, tmap, tag_group, gid, item, clock, counts)
    gone_tags = [t for t in tmap.tags if t not in seen_tags]
    gone_groups = [g for g in tmap.groups if g not in seen_groups]
    if (gone_tags or gone_groups) and not allow_mass_delete:
        if not listed:
            tmap.issue("mass_delete_blocked", f"WeCom listed no tags: {len(gone_tags)} not deleted in siyu", clock)
            tmap.confirm["pull"] = len(gone_tags)
            gone_tags, gone_groups = [], []
        elif _too_many(len(gone_tags), len(tmap.tags)):
            tmap.issue(
                "mass_delete_blocked", f"{len(gone_tags)} tags deleted in WeCom: confirm to delete in siyu", clock
            )
            tmap.confirm["pull"] = len(gone_tags)
            gone_tags, gone_groups = [], []
        else:
            tmap.confirm.pop("pull", None)
    else:
        tmap.confirm.pop("pull", None)
    for tid in gone_tags:
        tag = session.get(Tag, tmap.tags.pop(tid)["tag_id"])
        if tag is not None:
            _delete_tag(session, tag, clock)
            counts["deleted"] += 1
    session.flush()
    for gid in gone_groups:
        tmap.groups.pop(gid)
        tag_group = tmap.group_by_wecom_id(session, gid)
        if tag_group is None:
            continue
        if session.scalar(select(Tag.id).where(Tag.group_id == tag_group.id).limit(1)) is None:
            session.delete(tag_group)
            counts["deleted"] += 1
        else:
            tag_group.wecom_group_id = None  # keeps siyu-only tags: unlinked
    tmap.save()
    session.flush()
    return counts


def opt_in_group(session: Session, workspace_id: int, tag_group_id: int, clock: Clock) -> bool:
    """Mark a siyu tag group to be created in WeCom by the next push; False when it is unknown or
    already linked (a linked group's new tags are pushed anyway)."""
    group = session.get(TagGroup, tag_group_id)
    if group is None or group.workspace_id != workspace_id or group.wecom_group_id:
        return False
    tmap = load_map(session, workspace_id, clock)
    if tag_group_id not in tmap.push_groups:
        tmap.push_groups.append(tag_group_id)
        tmap.save()
    return True


def push(
    session: Session,
    config: WecomConfig,
    clock: Clock,
    *,
    client: WecomClient | None = None,
    allow_mass_delete: bool = False,
) -> dict[str, int]:
    """siyu's tag changes to WeCom, after a pull (see the module docstring); returns what changed."""
    client = client or client_for(config)
    pulled = pull(session, config, clock, client=client, allow_mass_delete=allow_mass_delete)
    tmap = load_map(session, config.workspace_id, clock)
    counts = _counts("created", "renamed", "deleted", "errors") | {f"pull_{k}": v for k, v in pulled.items()}
    _push_deletes(session, client, config, tmap, clock, counts, allow_mass_delete=allow_mass_delete)
    _push_renames(session, client, config, tmap, clock, counts)
    _push_creates(session, client, config, tmap, clock, counts)
    tmap.save()
    session.flush()
    return counts


def _push_deletes(
    session: Session,
    client: WecomClient,
    config: WecomConfig,
    tmap: TagMap,
    clock: Clock,
    counts: dict[str, int],
    *,
    allow_mass_delete: bool = False,
) -> None:
    gone_groups = [
        gid
        for gid, e in tmap.groups.items()
        if tmap.group_by_wecom_id(session, gid) is None and (allow_mass_delete or not e.get("held"))
    ]
    if not allow_mass_delete:
        # a WeCom-born group deleted in siyu is only unlinked: WeCom keeps it until the operator confirms
        for gid in [g for g in gone_groups if tmap.groups[g].get("origin", WECOM) == WECOM]:
            tmap.groups[gid]["held"] = True
            tmap.issue(
                "group_unlinked", f"WeCom group {tmap.groups[gid]['name']!r} kept in WeCom: confirm to delete", clock
            )
            gone_groups.remove(gid)
    held = {g for g, e in tmap.groups.items() if e.get("held")}
    gone_tags = [
        tid
        for tid, e in tmap.tags.items()
        if e["group"] not in gone_groups and e["group"] not in held and session.get(Tag, e["tag_id"]) is None
    ]
    if not gone_groups and not gone_tags:
        tmap.confirm.pop("push", None)
        return
    if not allow_mass_delete and _too_many(len(gone_tags), len(tmap.tags)):
        tmap.issue("mass_delete_blocked", f"{len(gone_tags)} tags deleted in siyu: confirm to delete in WeCom", clock)
        tmap.confirm["push"] = len(gone_tags)
        return
    tmap.confirm.pop("push", None)
    try:
        client.call("POST", "externalcontact/del_corp_tag", data={"tag_id": gone_tags, "group_id": gone_groups})
    except WecomError as exc:
        if exc.code != INVALID_TAG:
            counts["errors"] += 1
            _fail(session, tmap, config, "delete_failed", exc, clock)
            return
        # 40068: some id is unknown to WeCom, and WeCom refused the whole batch: one id at a time
        gone_groups, gone_tags = _delete_one_by_one(
            session, client, config, tmap, clock, counts, gone_groups, gone_tags
        )
    for gid in gone_groups:
        tmap.groups.pop(gid, None)
        for tid in [t for t, e in tmap.tags.items() if e["group"] == gid]:
            tmap.tags.pop(tid)
    for tid in gone_tags:
        tmap.tags.pop(tid, None)
    counts["deleted"] += len(gone_groups) + len(gone_tags)


def _delete_one_by_one(
    session: Session,
    client: WecomClient,
    config: WecomConfig,
    tmap: TagMap,
    clock: Clock,
    counts: dict[str, int],
    groups: list[str],
    tags: list[str],
) -> tuple[list[str], list[str]]:
    """`del_corp_tag` per id; an id WeCom refuses with 40068 is already gone there (done too)."""
    done: dict[str, list[str]] = {"group_id": [], "tag_id": []}
    for key, ids in (("group_id", groups), ("tag_id", tags)):
        for wecom_id in ids:
            try:
                client.call("POST", "externalcontact/del_corp_tag", data={key: [wecom_id]})
            except WecomError as exc:
                if exc.code != INVALID_TAG:
                    counts["errors"] += 1
                    _fail(session, tmap, config, "delete_failed", exc, clock)
                    continue
            done[key].append(wecom_id)
    return done["group_id"], done["tag_id"]


def _push_renames(
    session: Session, client: WecomClient, config: WecomConfig, tmap: TagMap, clock: Clock, counts: dict[str, int]
) -> None:
    renames: list[tuple[str, str, dict[str, Any]]] = []
    for gid, entry in tmap.groups.items():
        group = tmap.group_by_wecom_id(session, gid)
        if group is not None and group.name != entry["name"]:
            renames.append((gid, group.name, entry))
    for tid, entry in tmap.tags.items():
        tag = session.get(Tag, entry["tag_id"])
        if tag is not None and tag.name != entry["name"]:
            renames.append((tid, tag.name, entry))
    for wecom_id, name, entry in renames:
        try:
            client.call("POST", "externalcontact/edit_corp_tag", data={"id": wecom_id, "name": name})
        except WecomError as exc:
            counts["errors"] += 1
            _fail(session, tmap, config, "rename_failed", exc, clock)
            continue
        entry["name"] = name
        counts["renamed"] += 1


def _push_creates(
    session: Session, client: WecomClient, config: WecomConfig, tmap: TagMap, clock: Clock, counts: dict[str, int]
) -> None:
    """New siyu tags of linked groups and of groups the operator opted in (never every siyu tag)."""
    unlinked = session.scalars(
        select(Tag)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(
            Tag.workspace_id == config.workspace_id,
            Tag.wecom_tag_id.is_(None),
            or_(TagGroup.wecom_group_id.is_not(None), TagGroup.id.in_(tmap.push_groups or [-1])),
        )
        .order_by(Tag.id)
    ).all()
    by_group: dict[int, list[Tag]] = {}
    for tag in unlinked:
        by_group.setdefault(tag.group_id, []).append(tag)
    for group_id, tags in by_group.items():
        group = session.get(TagGroup, group_id)
        assert group is not None
        try:
            _add_tags(session, client, tmap, group, tags, clock, counts)
        except WecomError as exc:
            if exc.code != DUPLICATE_NAME or len(tags) == 1:
                counts["errors"] += 1
                _fail(session, tmap, config, "create_failed", exc, clock)
                continue
            # 40071 (a name WeCom already has) refuses the whole batch: one tag per call
            for tag in tags:
                try:
                    _add_tags(session, client, tmap, group, [tag], clock, counts)
                except WecomError as one:
                    counts["errors"] += 1
                    _fail(session, tmap, config, "create_failed", one, clock)
    # an opted-in group stays opted in until WeCom has it (linked groups are pushed anyway)
    tmap.push_groups = [g for g in tmap.push_groups if (grp := session.get(TagGroup, g)) and not grp.wecom_group_id]


def _add_tags(
    session: Session,
    client: WecomClient,
    tmap: TagMap,
    group: TagGroup,
    tags: list[Tag],
    clock: Clock,
    counts: dict[str, int],
) -> None:
    gid = group.wecom_group_id
    data: dict[str, Any] = {"tag": [{"name": t.name} for t in tags]}
    data.update({"group_id": gid} if gid else {"group_name": group.name, "order": group.sort_order})
    answer = client.call("POST", "externalcontact/add_corp_tag", data=data)
    created = answer.get("tag_group") or {}
    gid = str(created.get("group_id") or gid)
    if not group.wecom_group_id:
        group.wecom_group_id = gid
    tmap.groups.setdefault(gid, {"name": group.name, "origin": SIYU})
    ids = {str(t["name"]): str(t["id"]) for t in created.get("tag") or []}
    for tag in tags:
        tid = ids.get(tag.name)
        if tid is None:
            tmap.issue("create_failed", f"WeCom did not return tag {tag.name!r}", clock)
            continue
        tag.wecom_tag_id = tid
        tmap.tags[tid] = {"tag_id": tag.id, "name": tag.name, "group": gid, "origin": SIYU}
        counts["created"] += 1
