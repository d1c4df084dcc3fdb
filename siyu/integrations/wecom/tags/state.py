"""What the tag sync remembers between runs: which WeCom group/tag id each siyu tag group/tag is,
the name both sides agreed on at the last sync, where each tag was born, and recent problems.

The links themselves are columns: `TagGroup.wecom_group_id` and `Tag.wecom_tag_id` (what other
areas read). The rest lives in one `WecomSyncRun` row per workspace with scope "tag_map" (its
`cursor` JSON):

    {"groups": {"<wecom group id>": {"name": "客户等级", "origin": "wecom", "held": false}},
     "tags":   {"<wecom tag id>":   {"tag_id": 9, "name": "VIP", "group": "<wecom group id>", "origin": "siyu"}},
     "push_groups": [4],            # siyu tag groups the operator chose to create in WeCom
     "confirm": {"pull": 12},       # deletions held for the operator (mass-delete guard)
     "issues": [{"at": "...", "kind": "rename_conflict", "detail": "..."}],   # newest first, ≤ 50
     "pending": [{"customer_id": 5, "tag_id": 9, "is_added": true, "attempts": 1}]}  # mark_tag to retry

"name" is the name both sides last agreed on, "origin" where the group/tag was born. Maps written
before `TagGroup.wecom_group_id` existed kept "tag_group_id" per group entry: `load_map` writes it
to the column once (when the column is empty) and drops the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import SyncStatus, TagGroup, WecomSyncRun

MAP_SCOPE = "tag_map"
RUN_SCOPE = "tags"
MAX_ISSUES = 50
WECOM = "wecom"
SIYU = "siyu"


@dataclass
class TagMap:
    """The loaded mapping (mutate freely, then `save`)."""

    row: WecomSyncRun
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    """`mark_tag` calls that failed with a retryable error; the periodic sync tries them again."""
    push_groups: list[int] = field(default_factory=list)
    """siyu tag groups (not linked yet) the operator opted in to create in WeCom."""
    confirm: dict[str, int] = field(default_factory=dict)
    """Deletions held by the mass-delete guard, by step ("pull": in siyu, "push": in WeCom)."""

    def group_by_wecom_id(self, session: Session, gid: str) -> TagGroup | None:
        """The siyu tag group linked to a WeCom group id."""
        return session.scalar(
            select(TagGroup).where(TagGroup.workspace_id == self.row.workspace_id, TagGroup.wecom_group_id == gid)
        )

    def add_pending(self, item: dict[str, Any]) -> None:
        """Queue a `mark_tag` retry; one per (customer, tag): a newer item replaces an older one."""
        key = (int(item["customer_id"]), int(item["tag_id"]))
        self.pending = [p for p in self.pending if (int(p["customer_id"]), int(p["tag_id"])) != key]
        self.pending.append(item)

    def issue(self, kind: str, detail: str, clock: Clock) -> None:
        """Remember a problem for the tag page (newest first)."""
        self.issues.insert(0, {"at": clock.now().isoformat(), "kind": kind, "detail": detail[:300]})
        del self.issues[MAX_ISSUES:]

    def save(self) -> None:
        # A new dict each time: the JSON column notices reassignment, not in-place changes.
        self.row.cursor = {
            "groups": dict(self.groups),
            "tags": dict(self.tags),
            "issues": list(self.issues),
            "pending": list(self.pending),
            "push_groups": list(self.push_groups),
            "confirm": dict(self.confirm),
        }


def load_map(session: Session, workspace_id: int, clock: Clock, *, lock: bool = True) -> TagMap:
    """The workspace's mapping row (created on first use), locked for this transaction by default."""
    statement = select(WecomSyncRun).where(WecomSyncRun.workspace_id == workspace_id, WecomSyncRun.scope == MAP_SCOPE)
    if lock:
        statement = statement.with_for_update()
    row = session.scalar(statement.order_by(WecomSyncRun.id).limit(1))
    if row is None:
        row = WecomSyncRun(
            workspace_id=workspace_id,
            scope=MAP_SCOPE,
            status=SyncStatus.DONE,
            step="map",
            cursor={},
            counts={},
            started_at=clock.now(),
        )
        session.add(row)
        session.flush()
    cursor = row.cursor or {}
    tmap = TagMap(
        row=row,
        groups={k: dict(v) for k, v in (cursor.get("groups") or {}).items()},
        tags={k: dict(v) for k, v in (cursor.get("tags") or {}).items()},
        issues=list(cursor.get("issues") or []),
        pending=list(cursor.get("pending") or []),
        push_groups=[int(i) for i in cursor.get("push_groups") or []],
        confirm={str(k): int(v) for k, v in (cursor.get("confirm") or {}).items()},
    )
    if any("tag_group_id" in e for e in tmap.groups.values()):
        _migrate_group_links(session, tmap)
    return tmap


def _migrate_group_links(session: Session, tmap: TagMap) -> None:
    """Old maps kept the group link as "tag_group_id": write it to `TagGroup.wecom_group_id` once."""
    for gid, entry in tmap.groups.items():
        tag_group_id = entry.pop("tag_group_id", None)
        group = session.get(TagGroup, tag_group_id) if tag_group_id is not None else None
        if group is not None and group.workspace_id == tmap.row.workspace_id and not group.wecom_group_id:
            group.wecom_group_id = gid
    tmap.save()
    session.flush()


def resolve_name(siyu_name: str, wecom_name: str, last: str | None, origin: str) -> tuple[str, bool]:
    """The name that wins and whether both sides changed it since the last sync (a conflict).

    One side changed → that side wins (the later writer). Both changed → the tag's birthplace wins
    (WeCom for tags first seen in WeCom, siyu for tags siyu created)."""
    if siyu_name == wecom_name:
        return siyu_name, False
    siyu_changed = last is None or siyu_name != last
    wecom_changed = last is None or wecom_name != last
    if wecom_changed and not siyu_changed:
        return wecom_name, False
    if siyu_changed and not wecom_changed:
        return siyu_name, False
    return (wecom_name if origin == WECOM else siyu_name), True
