"""Column mapping: which import column feeds which profile field, identity, tag or attribute.

Headers are matched to targets by a table of Chinese and English names (as shop and CRM
exports spell them); the operator can override any column or ignore it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from siyu.kit.errors import InvalidInput
from siyu.models import IdentityType

IGNORE = ""
TAGS = "tags"
OWNER = "owner"  # staff member by name or WeCom user id
IDENTITY_PREFIX = "identity:"
ATTRIBUTE_PREFIX = "attr:"

PROFILE_TARGETS = (
    "name",
    "gender",
    "birthday",
    "province",
    "city",
    "phone",
    "email",
    "lifecycle_stage",
    "first_channel",
)

ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "姓名",
        "名字",
        "客户姓名",
        "客户名称",
        "昵称",
        "收货人",
        "name",
        "full name",
        "customer name",
        "nickname",
    ),
    "phone": (
        "手机",
        "手机号",
        "手机号码",
        "电话",
        "联系电话",
        "联系方式",
        "mobile",
        "phone",
        "phone number",
        "tel",
        "cellphone",
    ),
    "email": ("邮箱", "电子邮件", "电子邮箱", "email", "e-mail", "mail"),
    "gender": ("性别", "gender", "sex"),
    "birthday": ("生日", "出生日期", "birthday", "birth date", "date of birth", "dob"),
    "province": ("省", "省份", "所在省份", "province", "state"),
    "city": ("城市", "市", "所在城市", "city"),
    "lifecycle_stage": ("生命周期", "生命周期阶段", "客户阶段", "lifecycle", "lifecycle stage", "stage"),
    "first_channel": ("渠道", "来源", "来源渠道", "首次渠道", "channel", "source channel", "first channel"),
    OWNER: ("归属导购", "导购", "所属员工", "负责人", "员工", "owner", "staff", "owner staff"),
    TAGS: ("标签", "客户标签", "tags", "tag", "labels"),
    IDENTITY_PREFIX + IdentityType.TAOBAO: ("淘宝", "淘宝id", "淘宝昵称", "旺旺", "旺旺号", "taobao", "taobao id"),
    IDENTITY_PREFIX + IdentityType.TMALL: ("天猫", "天猫id", "tmall", "tmall id"),
    IDENTITY_PREFIX + IdentityType.JD: ("京东", "京东id", "京东账号", "jd", "jd id", "jd account"),
    IDENTITY_PREFIX + IdentityType.PINDUODUO: ("拼多多", "拼多多id", "pinduoduo", "pdd"),
    IDENTITY_PREFIX + IdentityType.DOUYIN: ("抖音", "抖音id", "抖音号", "douyin", "douyin id"),
    IDENTITY_PREFIX + IdentityType.KUAISHOU: ("快手", "快手id", "快手号", "kuaishou"),
    IDENTITY_PREFIX + IdentityType.XIAOHONGSHU: ("小红书", "小红书id", "小红书号", "xiaohongshu", "red"),
    IDENTITY_PREFIX + IdentityType.WEIBO: ("微博", "微博id", "weibo"),
    IDENTITY_PREFIX + IdentityType.YOUZAN: ("有赞", "有赞id", "youzan"),
    IDENTITY_PREFIX + IdentityType.STORE_MEMBER_NO: (
        "会员号",
        "会员卡号",
        "门店会员号",
        "member no",
        "membership number",
        "store member no",
    ),
    IDENTITY_PREFIX + IdentityType.WECHAT_UNIONID: ("unionid", "微信unionid", "wechat unionid"),
    IDENTITY_PREFIX + IdentityType.WECHAT_OPENID: ("openid", "微信openid", "wechat openid"),
    IDENTITY_PREFIX + IdentityType.WECOM_EXTERNAL_USERID: (
        "external_userid",
        "外部联系人id",
        "企微客户id",
        "wecom external userid",
    ),
}

_SPACES = re.compile(r"[\s_\-:：()（）]+")


def _key(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).strip().lower()).strip()


_LOOKUP = {_key(alias): target for target, aliases in ALIASES.items() for alias in aliases}


def valid_targets(identity_types: Iterable[str], attribute_keys: Iterable[str]) -> set[str]:
    targets = {*PROFILE_TARGETS, OWNER, TAGS, IGNORE}
    targets |= {IDENTITY_PREFIX + t for t in identity_types}
    targets |= {ATTRIBUTE_PREFIX + k for k in attribute_keys}
    return targets


def guess_mapping(headers: list[str], identity_types: Iterable[str], attributes: Mapping[str, str]) -> dict[str, str]:
    """Propose a target for each header; unknown headers map to IGNORE.

    `attributes` maps attribute key → label, so a column named after either maps to it.
    """
    identity_types = set(identity_types)
    by_name = {_key(k): ATTRIBUTE_PREFIX + k for k in attributes}
    by_name |= {_key(label): ATTRIBUTE_PREFIX + k for k, label in attributes.items() if label}
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for header in headers:
        key = _key(header)
        target = _LOOKUP.get(key) or by_name.get(key)
        if target is None and key in identity_types:
            target = IDENTITY_PREFIX + key
        if target is None and key.startswith("identity "):
            candidate = key.removeprefix("identity ").replace(" ", "_")
            target = IDENTITY_PREFIX + candidate if candidate in identity_types else None
        if target is None or (target in taken and target != TAGS):
            target = IGNORE
        mapping[header] = target
        taken.add(target)
    return mapping


def resolve_mapping(
    headers: list[str],
    overrides: Mapping[str, str] | None,
    identity_types: Iterable[str],
    attributes: Mapping[str, str],
) -> dict[str, str]:
    """The guessed mapping with the operator's overrides applied and checked."""
    identity_types = list(identity_types)
    mapping = guess_mapping(headers, identity_types, attributes)
    targets = valid_targets(identity_types, attributes)
    for header, target in (overrides or {}).items():
        if header not in mapping:
            raise InvalidInput(
                f"mapping names column {header!r}, which the file does not have",
                details={"field": "mapping", "column": header},
            )
        if target not in targets:
            raise InvalidInput(
                f"unknown target {target!r} for column {header!r}", details={"field": "mapping", "column": header}
            )
        mapping[header] = target
    used = [t for t in mapping.values() if t not in (IGNORE, TAGS)]
    duplicates = sorted({t for t in used if used.count(t) > 1})
    if duplicates:
        raise InvalidInput(f"several columns map to {', '.join(duplicates)}", details={"field": "mapping"})
    if not any(t == "phone" or t == "email" or t.startswith(IDENTITY_PREFIX) for t in mapping.values()):
        raise InvalidInput("no column holds an identity (phone, e-mail or a platform id)", details={"field": "mapping"})
    return mapping
