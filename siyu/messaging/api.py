"""JSON API of messaging: channel accounts, content library, delivery policy, outbox.

Credentials go in (`credentials` on POST/PUT/PATCH) and never come out: responses carry
`has_credentials` only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput
from siyu.kit.ids import MAX_ID
from siyu.messaging.schemas import (
    AccountIn,
    AccountRead,
    ContentIn,
    ContentRead,
    DeliveryRead,
    OutboxPage,
    PolicyIn,
    PolicyRead,
    PreviewRead,
    account_read,
    content_read,
    delivery_read,
    outbox_read,
    policy_read,
)
from siyu.messaging.service import accounts, content_library, outbox, policy_settings
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["messaging"])
Reader = Annotated[Ctx, Depends(require(Scope.TOUCH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.TOUCH_WRITE))]
Channels = Annotated[Ctx, Depends(require(Scope.TOUCH_CHANNELS))]
CustomerReader = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_READ))]
QueryId = Annotated[int, Query(gt=0, le=MAX_ID)]


# --- channel accounts ----------------------------------------------------------------------------


@router.get("/channel-accounts", response_model=list[AccountRead])
def list_accounts(ctx: Reader) -> list[AccountRead]:
    return [account_read(a) for a in accounts.list_accounts(ctx.session, ctx.actor)]


@router.post("/channel-accounts", status_code=201, response_model=AccountRead)
def create_account(body: AccountIn, ctx: Channels) -> AccountRead:
    """Add an account; `credentials` are encrypted at rest and never returned."""
    return account_read(accounts.create_account(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/channel-accounts/{account_id}", response_model=AccountRead)
def get_account(account_id: IdPath, ctx: Reader) -> AccountRead:
    return account_read(accounts.get_account(ctx.session, ctx.actor, account_id))


@router.put("/channel-accounts/{account_id}", response_model=AccountRead)
@router.patch("/channel-accounts/{account_id}", response_model=AccountRead)
def update_account(account_id: IdPath, body: AccountIn, ctx: Channels) -> AccountRead:
    """Replace name, settings and state; `credentials`: omitted or null keeps them, {} clears them."""
    account = accounts.update_account(ctx.session, actor=ctx.actor, account_id=account_id, data=body, clock=ctx.clock)
    return account_read(account)


@router.post("/channel-accounts/{account_id}/test", response_model=AccountRead)
def test_account(account_id: IdPath, ctx: Channels) -> AccountRead:
    """Check settings and credentials with the provider; a failure is a 422 with its message,
    and is kept as the account's `last_error`."""
    try:
        accounts.test_account(ctx.session, actor=ctx.actor, account_id=account_id, clock=ctx.clock)
    except InvalidInput:
        ctx.session.commit()  # keep last_error (and the audit entry) although the answer is a refusal
        raise
    return account_read(accounts.get_account(ctx.session, ctx.actor, account_id))


# --- content library ------------------------------------------------------------------------------


@router.get("/content", response_model=list[ContentRead])
def list_content(
    ctx: Reader,
    tag: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    include_archived: bool = False,
) -> list[ContentRead]:
    """The library newest first; `tag` filters by tag, `q` by a text in the name or body."""
    if (tag and "\x00" in tag) or (q and "\x00" in q):
        raise InvalidInput("a NUL character cannot be searched for", details={"field": "q" if q else "tag"})
    items = content_library.list_content(ctx.session, ctx.actor, tag=tag, q=q, include_archived=include_archived)
    return [content_read(i) for i in items]


@router.get("/content/tags", response_model=list[str])
def content_tags(ctx: Reader) -> list[str]:
    return content_library.all_tags(ctx.session, ctx.actor)


@router.post("/content", status_code=201, response_model=ContentRead)
def create_content(body: ContentIn, ctx: Writer) -> ContentRead:
    """Add an entry; an unknown variable is a 422 naming the field and the variable."""
    return content_read(content_library.create_content(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/content/{content_id}", response_model=ContentRead)
def get_content(content_id: IdPath, ctx: Reader) -> ContentRead:
    return content_read(content_library.get_content(ctx.session, ctx.actor, content_id))


@router.put("/content/{content_id}", response_model=ContentRead)
def update_content(content_id: IdPath, body: ContentIn, ctx: Writer) -> ContentRead:
    item = content_library.update_content(
        ctx.session, actor=ctx.actor, content_id=content_id, data=body, clock=ctx.clock
    )
    return content_read(item)


@router.post("/content/{content_id}/archive", response_model=ContentRead)
def archive_content(content_id: IdPath, ctx: Writer) -> ContentRead:
    """Archive (content is never deleted: broadcasts and deliveries refer to it)."""
    return content_read(
        content_library.archive_content(ctx.session, actor=ctx.actor, content_id=content_id, clock=ctx.clock)
    )


@router.get("/content/{content_id}/preview", response_model=PreviewRead)
def preview_content(content_id: IdPath, customer_id: QueryId, ctx: Reader) -> PreviewRead:
    """The message as one customer would get it (the link is the content's own, not a short link)."""
    message = content_library.preview_content(
        ctx.session, actor=ctx.actor, content_id=content_id, customer_id=customer_id, clock=ctx.clock
    )
    return PreviewRead(content_id=content_id, customer_id=customer_id, message=message)


# --- delivery policy -------------------------------------------------------------------------------


@router.get("/touch-policy", response_model=PolicyRead)
def get_policy(ctx: Reader) -> PolicyRead:
    """The policy in force (`saved: false` while the defaults apply)."""
    return policy_read(policy_settings.get_policy(ctx.session, ctx.actor))


@router.put("/touch-policy", response_model=PolicyRead)
def save_policy(body: PolicyIn, ctx: Channels) -> PolicyRead:
    return policy_read(policy_settings.save_policy(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


# --- outbox and deliveries ---------------------------------------------------------------------------


@router.get("/outbox", response_model=OutboxPage)
def list_outbox(
    ctx: Reader,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OutboxPage:
    """What the sandbox adapter "sent", newest first."""
    page = outbox.list_outbox(ctx.session, ctx.actor, cursor=cursor, limit=limit)
    return OutboxPage(items=[outbox_read(m) for m in page.items], next_cursor=page.next_cursor)


@router.get("/customers/{customer_id}/deliveries", response_model=list[DeliveryRead])
def customer_deliveries(
    customer_id: IdPath, ctx: CustomerReader, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[DeliveryRead]:
    """The customer's latest deliveries from every source, suppressed ones with their reason."""
    rows = outbox.deliveries_of_customer(ctx.session, ctx.actor, customer_id, limit=limit)
    return [delivery_read(d) for d in rows]
