"""Drawing demo customers: profile, identities, tags, consent, relationships and timeline.

Pure Python on a seeded `random.Random`: the same seed, clock and roster give the same people.
Nothing here touches the database; `siyu.demo.builder` inserts the plans in bulk. Adds go
through the live codes of `siyu.demo.funnel`, which attributes them and draws their scans.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate, count
from typing import Any

from siyu.demo.catalog import (
    ATTRIBUTES,
    BODY_SIZES,
    CHANNELS,
    CITIES,
    EMAIL_DOMAINS,
    PHONE_PREFIXES,
    STYLES,
    TAG_GROUPS,
    ChannelSpec,
)
from siyu.demo.channels import CHANNEL_SETUP, GROUP_JOIN_RATE
from siyu.demo.funnel import Attributed, Funnel
from siyu.demo.history import Calendar, EventPlan, RelationshipPlan, behaviour_events, end_some
from siyu.demo.names import person_name
from siyu.demo.orders import OrderBook, OrderPlan
from siyu.models import ConsentChannel, ConsentStatus, Gender, IdentityType, LifecycleStage, TagSource
from siyu.models.customer import PROFILE_FIELDS

_GENDERS = (Gender.FEMALE, Gender.MALE, Gender.UNKNOWN)
_GENDER_CUM = tuple(accumulate((88, 7, 5)))
_CITY_CUM = tuple(accumulate(c[3] for c in CITIES))
_AGES = tuple(range(18, 36))
_AGE_CUM = tuple(accumulate(6 if 23 <= a <= 30 else 3 for a in _AGES))
_ALNUM = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"
_WECHATISH = _ALNUM + "-_"  # WeCom external userids and unionids use base64url
_ORDER_CHANNELS = frozenset({"包裹卡", "天猫旗舰店"})
_PHONE_SOURCE = {"包裹卡": "tmall_order", "天猫旗舰店": "tmall_order", "门店": "store_pos", "抖音": "douyin_order"}
_LIFECYCLE_TAG = {
    LifecycleStage.NEW: "新客",
    LifecycleStage.ACTIVE: "首单客",
    LifecycleStage.LOYAL: "复购客",
    LifecycleStage.DORMANT: "沉睡客",
    LifecycleStage.CHURNED: "已流失",
}
# Stage odds for customers who still have a staff member: (stages, cumulative weights).
_SEASONED = (
    (LifecycleStage.ACTIVE, LifecycleStage.LOYAL, LifecycleStage.DORMANT, LifecycleStage.NEW),
    tuple(accumulate((30, 25, 30, 15))),
)
_FRESH = ((LifecycleStage.NEW, LifecycleStage.ACTIVE, LifecycleStage.LOYAL), tuple(accumulate((60, 35, 5))))
_TAG_NAMES = {group: names for group, _, names in TAG_GROUPS}
LEAD_RATE = 0.05
SECOND_STAFF_RATE = 0.10
CODE_TAGGER = "live_code"
"""`assigned_by` of the tags a live code applies on add (as `siyu.livecodes.adds` does)."""


@dataclass(frozen=True)
class Roster:
    """The ids the generator assigns customers to."""

    staff_by_city: dict[str, list[int]]
    """Store staff by their store's city."""
    staff_by_region: dict[str, list[int]]
    online_staff: list[int]
    staff_wecom_ids: dict[int, str]
    store_codes_by_staff: dict[int, str]
    tag_ids: dict[tuple[str, str], int]
    """(group name, tag name) → tag id."""


@dataclass
class CustomerPlan:
    """Everything to insert for one customer, before it has an id."""

    row: dict[str, Any]
    identities: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, value, source)."""
    tags: list[tuple[int, TagSource, datetime, str]] = field(default_factory=list)
    """(tag id, source, assigned_at, assigned_by)."""
    consents: list[tuple[ConsentChannel, ConsentStatus, str, datetime]] = field(default_factory=list)
    """(channel, status, source, changed_at)."""
    relationships: list[RelationshipPlan] = field(default_factory=list)
    events: list[EventPlan] = field(default_factory=list)
    """Events that are not about relationships (those are derived from `relationships`)."""
    scans: list[dict[str, Any]] = field(default_factory=list)
    """Live code scans drawn with the customer's adds (most by people who did not add)."""
    group_scan: dict[str, Any] | None = None
    """The scan through which the customer joined a group, if they did."""
    orders: list[OrderPlan] = field(default_factory=list)


class CustomerGenerator:
    """Draws one customer after another; phones and platform ids never repeat."""

    def __init__(self, rng: random.Random, *, now: datetime, roster: Roster, timezone: str, funnel: Funnel) -> None:
        self.rng = rng
        self.roster = roster
        self.funnel = funnel
        self.calendar = Calendar(rng, now=now, timezone=timezone)
        self.orders = OrderBook(self.calendar)
        self.now = self.calendar.now
        self._today = self.now.astimezone(self.calendar.zone).date()
        self._taken: set[tuple[str, str]] = set()
        self._member_no = count(100_001)
        self._province_of = {city: province for province, city, _, _ in CITIES}
        self._store_cities = sorted(roster.staff_by_city)

    def reserve(self, pairs: set[tuple[str, str]]) -> None:
        """Identity (type, value) pairs already in the workspace, never to be drawn again."""
        self._taken |= pairs

    def plan(self) -> CustomerPlan:
        """The next customer."""
        rng, cal = self.rng, self.calendar
        gender = rng.choices(_GENDERS, cum_weights=_GENDER_CUM)[0]
        province, city, region, _ = rng.choices(CITIES, cum_weights=_CITY_CUM)[0]
        moment = cal.add_moment()
        # Channels weigh in from their launch; package cards weigh more during the hook test.
        weights = [self.funnel.weight(c.name, c.weight, moment) for c in CHANNELS]
        channel = rng.choices(CHANNELS, weights=weights)[0]
        if channel.name == "门店" and city not in self.roster.staff_by_city:
            city = rng.choice(self._store_cities)  # store customers live near a store
            province, region = self._province_of[city], self._region_of(city)
        scans: list[dict[str, Any]] = []
        code_tags: list[tuple[int, datetime]] = []
        relationships = (
            [] if rng.random() < LEAD_RATE else self._relationships(channel, city, region, moment, scans, code_tags)
        )
        first_add = relationships[0].added_at if relationships else None
        created_at = first_add or moment
        if first_add and channel.name in _ORDER_CHANNELS:  # known to the shop (a Tmall member) before the add
            created_at = max(first_add - timedelta(days=rng.randint(1, 20)), self.now - timedelta(days=380))
        stage = self._stage(relationships, first_add)
        attributes = self._attributes(stage)
        row: dict[str, Any] = {
            "name": person_name(rng, gender),
            "gender": gender,
            "birthday": self._birthday() if rng.random() < 0.85 else None,
            "province": province,
            "city": city,
            "phone": self._phone(),
            "email": self._email() if rng.random() < 0.08 else None,
            "lifecycle_stage": stage,
            "owner_staff_id": relationships[0].staff_id if relationships else None,
            "first_channel": channel.name,
            "attributes": attributes,
            "created_at": created_at,
        }
        stamp = created_at.isoformat()  # survivorship stamps, as ingestion would have left them
        row["field_updated_at"] = {name: stamp for name in PROFILE_FIELDS if row[name] is not None} | {
            f"attr.{key}": stamp for key in attributes
        }
        changes = [created_at] + [t for r in relationships for t in (r.added_at, r.removed_at) if t is not None]
        row["updated_at"] = max(changes)
        plan = CustomerPlan(row=row, relationships=relationships, scans=scans)
        self._identities(plan, channel)
        self._join_group(plan, stage, code_tags)
        self._tags(plan, channel, stage, code_tags)
        self._consents(plan)
        owner = relationships[0].staff_id if relationships else None
        plan.orders = self.orders.plan(
            stage,
            relationships,
            platform=CHANNEL_SETUP[channel.name].platform,
            store_code=self.roster.store_codes_by_staff.get(owner) if owner is not None else None,
        )
        plan.events += [event for order in plan.orders for event in order.events()]
        self._events(plan, stage)
        return plan

    def _region_of(self, city: str) -> str | None:
        return next(region for _, c, region, _ in CITIES if c == city)

    def _relationships(
        self,
        channel: ChannelSpec,
        city: str,
        region: str | None,
        added_at: datetime,
        scans: list[dict[str, Any]],
        code_tags: list[tuple[int, datetime]],
    ) -> list[RelationshipPlan]:
        rng, cal, roster = self.rng, self.calendar, self.roster

        def edge(attributed: Attributed, at: datetime) -> RelationshipPlan:
            scans.extend(attributed.scans)
            code_tags.extend((tag_id, at) for tag_id in attributed.tag_ids)
            return RelationshipPlan(
                attributed.staff_id,
                at,
                attributed.channel,
                attributed.state,
                channel_id=attributed.channel_id,
                live_code_id=attributed.live_code_id,
                variant=attributed.variant,
                scan=attributed.scan,
            )

        first = edge(self.funnel.add(channel.name, added_at, city=city, region=region), added_at)
        edges = [first]
        if rng.random() < SECOND_STAFF_RATE and self.now - added_at > timedelta(hours=2):
            # A second staff member: online customers near a shop meet its 导购 there; store
            # customers (and those far from any shop) follow the official account to an adviser.
            at = cal.between(first.added_at + timedelta(hours=1), self.now)
            near_a_store = region is not None and first.staff_id not in roster.store_codes_by_staff
            other = "门店" if near_a_store else "公众号"
            attributed = self.funnel.add(other, at, city=city, region=region, exclude_staff=first.staff_id)
            edges.append(edge(attributed, at))
        end_some(cal, edges)
        return edges

    def _join_group(self, plan: CustomerPlan, stage: LifecycleStage, code_tags: list[tuple[int, datetime]]) -> None:
        """Some customers with a staff member also join a welfare group through the group code
        (not those who left; sleeping customers did so before they fell asleep)."""
        edges = plan.relationships
        if not edges or stage is LifecycleStage.CHURNED or self.rng.random() >= GROUP_JOIN_RATE:
            return
        end = self.now - timedelta(days=90) if stage is LifecycleStage.DORMANT else self.now
        joined = self.funnel.join(self.calendar.between(edges[0].added_at, end))
        if joined is None:
            return
        at = joined.scan["added_at"]
        plan.scans += joined.scans
        plan.group_scan = joined.scan
        code_tags.extend((tag_id, at) for tag_id in joined.tag_ids)
        props = {"group_id": joined.group_id, "live_code_id": joined.live_code_id}
        plan.events.append(EventPlan("group.joined", at, "wecom", props))

    def _stage(self, relationships: list[RelationshipPlan], first_add: datetime | None) -> LifecycleStage:
        if first_add is None:
            return LifecycleStage.LEAD
        if all(r.removed_at is not None for r in relationships):
            return LifecycleStage.CHURNED
        options = _SEASONED if self.now - first_add > timedelta(days=120) else _FRESH
        return self.rng.choices(options[0], cum_weights=options[1])[0]

    def _attributes(self, stage: LifecycleStage) -> dict[str, Any]:
        rng = self.rng
        values: dict[str, Any] = {}
        body_size, style, vip = (key for key, _, _ in ATTRIBUTES)
        if rng.random() < 0.55:
            values[body_size] = rng.choice(BODY_SIZES)
        if rng.random() < 0.65:
            values[style] = rng.choice(STYLES)
        if rng.random() < (0.45 if stage in (LifecycleStage.ACTIVE, LifecycleStage.LOYAL) else 0.08):
            values[vip] = f"VIP{rng.randrange(10**9, 10**10)}"
        return values

    def _birthday(self) -> date:
        age = self.rng.choices(_AGES, cum_weights=_AGE_CUM)[0]
        return self._today - timedelta(days=int(age * 365.25) + self.rng.randrange(365))

    def _unique(self, type_: str, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if (type_, value) not in self._taken:
                self._taken.add((type_, value))
                return value

    def _phone(self) -> str:
        rng = self.rng
        return self._unique(IdentityType.PHONE, lambda: f"+86{rng.choice(PHONE_PREFIXES)}{rng.randrange(10**8):08d}")

    def _email(self) -> str:
        rng = self.rng
        return self._unique(
            IdentityType.EMAIL,
            lambda: (
                "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 8)))
                + str(rng.randrange(100, 10_000))
                + "@"
                + rng.choice(EMAIL_DOMAINS)
            ),
        )

    def _draw(self, plan: CustomerPlan, type_: str, source: str, prefix: str, alphabet: str, length: int) -> None:
        rng = self.rng
        value = self._unique(type_, lambda: prefix + "".join(rng.choices(alphabet, k=length)))
        plan.identities.append((type_, value, source))

    def _identities(self, plan: CustomerPlan, channel: ChannelSpec) -> None:
        rng, name, row = self.rng, channel.name, plan.row
        plan.identities.append((IdentityType.PHONE, row["phone"], _PHONE_SOURCE.get(name, "h5_form")))
        if row["email"]:
            plan.identities.append((IdentityType.EMAIL, row["email"], "h5_form"))
        if plan.relationships:
            self._draw(plan, IdentityType.WECOM_EXTERNAL_USERID, "wecom", "wm", _WECHATISH, 30)
        if rng.random() < (0.55 if plan.relationships else 0.2):
            self._draw(plan, IdentityType.WECHAT_UNIONID, "wecom", "o", _WECHATISH, 27)
        from_shop = name in _ORDER_CHANNELS
        if rng.random() < (0.45 if from_shop else 0.2):
            self._draw(plan, IdentityType.TAOBAO, "taobao_order", "t_", string.digits, 13)
        if rng.random() < (0.6 if from_shop else 0.1):
            self._draw(plan, IdentityType.TMALL, "tmall_order", "AAH", _ALNUM, 21)
        if rng.random() < 0.08:
            self._draw(plan, IdentityType.JD, "jd_order", "jd_", _HEX, 12)
        if rng.random() < (0.7 if name == "抖音" else 0.12):
            self._draw(plan, IdentityType.DOUYIN, "douyin_order", "_000", _ALNUM, 32)
        if rng.random() < (0.7 if name == "小红书" else 0.1):
            self._draw(plan, IdentityType.XIAOHONGSHU, "xiaohongshu", "", _HEX, 24)
        if rng.random() < (0.9 if name == "门店" else 0.08):
            member_no = self._unique(IdentityType.STORE_MEMBER_NO, lambda: f"QW{next(self._member_no):08d}")
            plan.identities.append((IdentityType.STORE_MEMBER_NO, member_no, "store_pos"))

    def _tags(
        self, plan: CustomerPlan, channel: ChannelSpec, stage: LifecycleStage, code_tags: list[tuple[int, datetime]]
    ) -> None:
        """The live codes' tags (applied on add), then others up to one to four tags in all."""
        rng, row = self.rng, plan.row
        attrs = row["attributes"]
        size = attrs["body_size"].split(" ")[0] if "body_size" in attrs else rng.choice(_TAG_NAMES["尺码"])
        candidates: list[tuple[str, str]] = [
            ("风格偏好", attrs.get("preferred_style") or rng.choice(STYLES)),
            ("尺码", size),
            ("价格敏感度", rng.choice(_TAG_NAMES["价格敏感度"])),
            ("兴趣", rng.choice(_TAG_NAMES["兴趣"])),
        ]
        if stage in _LIFECYCLE_TAG:
            candidates.append(("生命周期", _LIFECYCLE_TAG[stage]))
        applied: dict[int, datetime] = {}
        for tag_id, at in code_tags:
            applied.setdefault(tag_id, at)
        for tag_id, at in applied.items():
            plan.tags.append((tag_id, TagSource.RULE, at, CODE_TAGGER))
        wanted = rng.randint(1, 4)
        chosen = [("来源", channel.name)] if not code_tags and rng.random() < 0.8 else []
        room = wanted - len(chosen) - len(applied)
        chosen += rng.sample(candidates, room) if room > 0 else []
        owner = row["owner_staff_id"]
        for group, tag in chosen:
            tag_id = self.roster.tag_ids[(group, tag)]
            if tag_id in applied:
                continue
            at = self.calendar.between(row["created_at"], self.now)
            if group in ("来源", "生命周期"):
                source, by = TagSource.RULE, f"rule:{'first_channel' if group == '来源' else 'lifecycle'}"
            elif group in ("风格偏好", "尺码") and owner is not None:
                source, by = TagSource.WECOM, self.roster.staff_wecom_ids[owner]
            elif rng.random() < 0.5:
                source, by = TagSource.IMPORT, "import:tmall_crm_2026.xlsx"
            else:
                source, by = TagSource.MANUAL, "operator@demo.siyu.local"
            plan.tags.append((tag_id, source, at, by))

    def _consents(self, plan: CustomerPlan) -> None:
        rng, cal, created = self.rng, self.calendar, plan.row["created_at"]
        if rng.random() < 0.65:
            unsubscribed = rng.random() < 0.04
            status = ConsentStatus.UNSUBSCRIBED if unsubscribed else ConsentStatus.GRANTED
            source = "sms_reply_TD" if unsubscribed else rng.choice(("tmall_order", "h5_form", "import"))
            plan.consents.append((ConsentChannel.SMS, status, source, cal.between(created, self.now)))
        if any(r.removed_at is None for r in plan.relationships) and rng.random() < 0.5:
            plan.consents.append((ConsentChannel.WECOM, ConsentStatus.GRANTED, "wecom_welcome", created))
        if rng.random() < 0.3:
            status = ConsentStatus.UNSUBSCRIBED if rng.random() < 0.05 else ConsentStatus.GRANTED
            at = cal.between(created, self.now)
            plan.consents.append((ConsentChannel.OFFICIAL_ACCOUNT, status, "official_account", at))
        if plan.row["email"] and rng.random() < 0.5:
            plan.consents.append((ConsentChannel.EMAIL, ConsentStatus.GRANTED, "h5_form", created))

    def _events(self, plan: CustomerPlan, stage: LifecycleStage) -> None:
        rng = self.rng
        for channel, status, source, at in plan.consents:
            if status is ConsentStatus.UNSUBSCRIBED:
                props = {"channel": str(channel), "status": str(status), "source": source}
                plan.events.append(EventPlan("consent.changed", at, "siyu", props))
        edges = plan.relationships
        already = len(plan.events) + sum(1 + (r.removed_at is not None) for r in edges)
        start = plan.row["created_at"]
        end = self.now
        if stage is LifecycleStage.CHURNED:
            end = max(r.removed_at for r in edges if r.removed_at is not None)
        elif stage is LifecycleStage.DORMANT:
            end = self.now - timedelta(days=90)
        wanted = max(0, rng.randint(3, 15) - already)
        plan.events += behaviour_events(self.calendar, wanted, start, end, plan.row["owner_staff_id"])
