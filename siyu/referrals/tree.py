"""The referral tree: referrer → referees → their referees…, through `Referral` rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.customers.masking import sees_pii, shown_phone
from siyu.customers.repository import visibility_clause
from siyu.models import Customer, Referral
from siyu.models.referral import ReferralStatus

MAX_DEPTH = 10
MAX_NODES = 5000


@dataclass
class TreeNode:
    """A customer in the tree; `referral_id`/`status` describe how they were referred (None at a root)."""

    customer_id: int
    name: str
    referral_id: int | None
    status: str | None
    depth: int
    children: list[TreeNode] = field(default_factory=list)


def _names(session: Session, actor: Actor, ids: set[int]) -> dict[int, str]:
    """Display names of the customers the actor may see; others stay anonymous (`#id`)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Customer.id, Customer.name, Customer.phone).where(Customer.id.in_(ids), visibility_clause(actor))
    )
    whole = sees_pii(actor)
    names = {}
    for cid, name, phone in rows:
        names[cid] = name or shown_phone(phone, whole=whole) or f"#{cid}"
    return names


_LEVEL_CHUNK = 10_000


def _load_subtree(
    session: Session,
    query: Select[int, int, int, ReferralStatus],
    children: dict[int, list[tuple[int, int, str]]],
    root: int,
    max_depth: int,
) -> None:
    """The referrals under `root`, level by level (one query per level, at most `max_depth`): every
    customer within `max_depth - 1` referrals of the root gets its referees, in referral order."""
    loaded: set[int] = set()
    level = [root]
    for _ in range(max_depth):
        loaded.update(level)
        found: set[int] = set()
        for start in range(0, len(level), _LEVEL_CHUNK):
            chunk = level[start : start + _LEVEL_CHUNK]
            rows = session.execute(query.where(Referral.referrer_customer_id.in_(chunk)).order_by(Referral.id))
            for rid, referrer, referee, status in rows:
                children[referrer].append((referee, rid, str(status)))
                found.add(referee)
        level = sorted(found - loaded)
        if not level:
            return


def referral_tree(
    session: Session,
    *,
    actor: Actor,
    program_id: int | None,
    root_customer_id: int | None,
    max_depth: int = 5,
) -> list[TreeNode]:
    """The tree under one customer (a single root node), or every top-level referrer's tree
    (referrers nobody referred), `max_depth` levels of referees deep. Rejected referrals are included
    with their status, so the console can show them."""
    actor.require(Scope.GROWTH_READ)
    max_depth = max(1, min(max_depth, MAX_DEPTH))
    query = select(Referral.id, Referral.referrer_customer_id, Referral.referee_customer_id, Referral.status).where(
        Referral.workspace_id == actor.workspace_id
    )
    if program_id is not None:
        query = query.where(Referral.program_id == program_id)
    children: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    parent_of: dict[int, tuple[int, str]] = {}
    if root_customer_id is None:
        for rid, referrer, referee, status in session.execute(query.order_by(Referral.id)):
            children[referrer].append((referee, rid, str(status)))
            parent_of[referee] = (rid, str(status))
        roots = sorted(c for c in children if c not in parent_of)
    else:
        _load_subtree(session, query, children, root_customer_id, max_depth)
        latest = session.execute(
            query.where(Referral.referee_customer_id == root_customer_id).order_by(Referral.id.desc()).limit(1)
        ).first()
        if latest is not None:
            parent_of[root_customer_id] = (latest.id, str(latest.status))
        roots = [root_customer_id]
    seen: set[int] = set()
    nodes: list[tuple[TreeNode, int]] = []

    def build(customer_id: int, referral: tuple[int, str] | None, depth: int) -> TreeNode:
        seen.add(customer_id)
        node = TreeNode(customer_id, "", referral[0] if referral else None, referral[1] if referral else None, depth)
        nodes.append((node, customer_id))
        if depth < max_depth and len(nodes) < MAX_NODES:
            for referee, rid, status in children.get(customer_id, []):
                if referee not in seen:  # guards against a cycle of merged customers
                    node.children.append(build(referee, (rid, status), depth + 1))
        return node

    trees = [build(root, parent_of.get(root) if root_customer_id is not None else None, 0) for root in roots]
    names = _names(session, actor, {cid for _, cid in nodes})
    for node, cid in nodes:
        node.name = names.get(cid, f"#{cid}")
    return trees
