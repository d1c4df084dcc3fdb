"""The demo brand's KOC program, through the KOC and commission services: the application form
(questionnaire) opened 52 days ago, 15 members applying, the two busiest inviters approved 30 days
ago (tagged KOC, made KOC in their groups, with the 8% commission rule, so their friends' later
orders earn commission), one applicant rejected. The scores are the daily scoring job's (run by
`build_community` once everything is committed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from siyu.community.koc.questionnaires import create_questionnaire, set_status
from siyu.community.koc.schemas import Decision, DecisionIn, FieldIn, QuestionnaireIn
from siyu.community.koc.service import apply, decide
from siyu.customers.service.tags import create_tag
from siyu.demo.community.context import Ctx
from siyu.demo.community.timeline import Step
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Questionnaire, Tag, TagGroup
from siyu.referrals.commission.rules import create_rule
from siyu.referrals.commission.schemas import RuleIn

APPLICANTS = 15
OPENED_DAYS_AGO = 52
APPROVED_DAYS_AGO = 30
DECIDED_HOUR = 15
STYLES = ["通勤", "甜美", "街头", "极简", "法式", "新中式"]
CHANNELS = ["小红书", "抖音", "微信朋友圈", "微博", "线下门店"]
FIELDS = [
    FieldIn(key="nickname", label="社交平台昵称", type="text", required=True, max_length=40),
    FieldIn(key="phone", label="联系电话", type="phone", required=True),
    FieldIn(key="channels", label="常用分享平台", type="multi", required=True, choices=CHANNELS),
    FieldIn(key="followers", label="粉丝数", type="number", required=True, min=0, max=10_000_000),
    FieldIn(key="style", label="擅长风格", type="single", required=True, choices=STYLES),
    FieldIn(key="why", label="为什么想成为栖梧 KOC", type="textarea", max_length=500),
]
REASONS = (
    "很喜欢栖梧的版型，平时也经常给朋友推荐。",
    "想和更多姐妹分享通勤穿搭。",
    "做穿搭博主两年了，希望和品牌深度合作。",
    "门店导购推荐我来申请，想试试看～",
    "",
)


def plan(ctx: Ctx) -> None:
    """Create the form, the KOC tag and the commission rule; plan the applications and decisions."""
    rng = ctx.rng
    opened = FrozenClock(ctx.local(OPENED_DAYS_AGO, 10))
    form = create_questionnaire(
        ctx.session,
        actor=ctx.actor,
        data=QuestionnaireIn(
            slug="koc-apply",
            title="栖梧 KOC 招募",
            intro="分享你的穿搭，成为栖梧 KOC：专属新品试穿、分销佣金和社群身份。",
            purpose="koc_application",
            fields=FIELDS,
        ),
        clock=opened,
    )
    set_status(ctx.session, actor=ctx.actor, questionnaire_id=form.id, status="open", clock=opened)
    group = ctx.session.scalar(
        select(TagGroup.id).where(TagGroup.workspace_id == ctx.workspace_id).order_by(TagGroup.sort_order).limit(1)
    )
    tag_id = None
    if group is not None:
        tag_id = create_tag(ctx.session, actor=ctx.actor, group_id=group, name="KOC", clock=opened, color="#f59f00").id
    rule = create_rule(
        ctx.session,
        actor=ctx.actor,
        data=RuleIn(name="KOC 分销 8%", rate_bp=800, days=30, cap_per_referee_fen=20_000, cap_per_month_fen=300_000),
        clock=opened,
    )
    applicants = list(dict.fromkeys([*ctx.kocs, *ctx.applicants]))
    others = [c for c in ctx.members if c not in ctx.busy and c not in applicants]
    applicants += rng.sample(others, max(0, min(APPLICANTS - len(applicants), len(others))))
    applicants = applicants[:APPLICANTS]
    for n, customer_id in enumerate(applicants):
        at = ctx.between(ctx.local(OPENED_DAYS_AGO - 1, 9), ctx.local(APPROVED_DAYS_AGO + 1, 22))
        ctx.timeline.at(at, _apply(ctx, form.id, customer_id, n))
    decided = ctx.local(APPROVED_DAYS_AGO, DECIDED_HOUR)
    for koc in ctx.kocs:
        ctx.timeline.at(
            decided,
            _decide(
                ctx,
                koc,
                DecisionIn(
                    decision=Decision.APPROVE,
                    note="邀请转化高、内容优质",
                    tag_id=tag_id,
                    group_ids=ctx.koc_groups.get(koc, []),
                    commission_rule_id=rule.id,
                ),
            ),
        )
    rejected = [c for c in applicants if c not in ctx.kocs]
    if rejected:
        ctx.timeline.at(
            decided + timedelta(minutes=10),
            _decide(ctx, rejected[-1], DecisionIn(decision=Decision.REJECT, note="近期无分享记录，下期再评估")),
        )


def _answers(ctx: Ctx, customer: Customer, n: int) -> dict[str, Any]:
    rng = ctx.rng
    phone = customer.phone or f"+86139{rng.randrange(10**8):08d}"
    return {
        "nickname": (customer.name or "栖梧粉")[:20] + rng.choice(("的衣橱", "穿搭日记", "", "Style")),
        "phone": phone,
        "channels": rng.sample(CHANNELS, rng.randrange(1, 4)),
        "followers": str(rng.choice((300, 1_200, 5_000, 18_000, 86_000))),
        "style": rng.choice(STYLES),
        "why": rng.choice(REASONS),
    }


def _apply(ctx: Ctx, form_id: int, customer_id: int, n: int) -> Step:
    def step(clock: FrozenClock) -> None:
        form = ctx.session.get(Questionnaire, form_id)
        customer = ctx.session.get(Customer, customer_id)
        assert form is not None and customer is not None
        apply(ctx.session, questionnaire=form, customer_id=customer_id, raw=_answers(ctx, customer, n), clock=clock)

    return step


def _decide(ctx: Ctx, customer_id: int, data: DecisionIn) -> Step:
    def step(clock: FrozenClock) -> None:
        decide(ctx.session, actor=ctx.actor, customer_id=customer_id, data=data, clock=clock)

    return step


def koc_tag(ctx: Ctx) -> int | None:
    """The KOC tag's id (for the tests and the report)."""
    return ctx.session.scalar(select(Tag.id).where(Tag.workspace_id == ctx.workspace_id, Tag.name == "KOC"))
