"""The demo brand's acquisition set-up: channels, live codes, groups and the hook test (constant data).

`siyu.demo.acquisition` writes these rows; `siyu.demo.funnel` draws the scans and adds on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from siyu.models import ChannelType, CostModel, LiveCodeKind, RotationMode, RouteShift


@dataclass(frozen=True)
class ChannelSetup:
    """One channel: its type, hook, cost model, launch and how well its codes convert."""

    type: ChannelType
    hook: str
    started_days_ago: int
    """No customer comes through the channel before it started."""
    add_rate: float
    """Adds per scan on the channel's live codes (the rest scanned and left)."""
    platform: str = "miniprogram"
    """Where the first orders of its customers are paid ("taobao" for Tmall, "pos" in shops)."""
    cost_model: CostModel = CostModel.ENTRIES
    cpa_fen: int | None = None
    cps_basis_points: int | None = None


# Keyed by the catalog channel names (`siyu.demo.catalog.CHANNELS`).
CHANNEL_SETUP: dict[str, ChannelSetup] = {
    "包裹卡": ChannelSetup(ChannelType.PACKAGE_CARD, "免费小样", 380, 0.30, platform="taobao"),
    "门店": ChannelSetup(ChannelType.STORE, "专属穿搭建议", 400, 0.60, platform="pos"),
    "小红书": ChannelSetup(ChannelType.KOL, "笔记同款穿搭清单", 270, 0.42, cost_model=CostModel.CPA, cpa_fen=800),
    "抖音": ChannelSetup(ChannelType.PAID_ADS, "新人红包", 200, 0.25),
    "短信": ChannelSetup(ChannelType.SMS, "5元无门槛券", 370, 0.35),
    "公众号": ChannelSetup(ChannelType.OFFICIAL_ACCOUNT, "专属穿搭顾问", 400, 0.50),
    "老带新": ChannelSetup(ChannelType.REFERRAL, "好友同享 20 元券", 300, 0.55),
    "天猫旗舰店": ChannelSetup(
        ChannelType.ECOMMERCE, "入会礼 · 新人红包", 400, 0.35, platform="taobao", cost_model=CostModel.CPS,
        cps_basis_points=500,
    ),
}  # fmt: skip

COST_DAYS = 90
"""Dated cost entries cover the last 90 brand-local days (today included)."""
CARD_SCAN_RATE = (0.08, 0.12)
"""Share of package cards shipped that get scanned: cards shipped = scans / rate."""
CARD_FEN, SAMPLE_FEN = 30, 1_200
"""A printed card; the free sample sent to each customer who added."""
AD_SCAN_RATE, AD_FEN_PER_IMPRESSION = (0.004, 0.006), 6
"""Feed ads: scans per impression; ¥60 CPM."""
SMS_SCAN_RATE, SMS_FEN = (0.004, 0.008), 5
"""Member SMS: scans per message sent; 5 fen a message."""
KOC_FEN_PER_ADD = 1_200
"""Samples and fees for KOC posts, paid on the 1st and 16th for the adds of the half month before
(on top of the ¥8 per add the KOL deal is settled at)."""
REFERRAL_REDEEMED, REFERRAL_PAIR_FEN = 0.6, 4_000
"""Share of referral adds whose ¥20 + ¥20 coupons are redeemed."""
MP_FEN_PER_ADD = (400, 800)
"""Official-account promotion (推文加热) per add, drawn per day."""
STORE_MATERIAL_FEN = 15_000
"""Posters and counter cards per store, paid on the first of the month."""
STORE_BONUS_FEN = 500
"""What a 导购 earns per new friend added in the shop (拉新奖励), paid daily."""


@dataclass(frozen=True)
class RouteSetup:
    staff: str
    """WeCom userid of the staff member (`siyu.demo.catalog`)."""
    weight: int = 1
    cap: int | None = None
    shift: RouteShift = RouteShift.ALWAYS
    backup: bool = False


@dataclass(frozen=True)
class CodeSetup:
    """A live code of one channel; `routes=None` routes to every store's staff (the scanner picks a store)."""

    key: str
    name: str
    channel: str
    routes: tuple[RouteSetup, ...] | None
    rotation: RotationMode = RotationMode.ROUND_ROBIN
    schedule: tuple[dict[str, Any], ...] = ()
    welcome: str = ""

    @property
    def kind(self) -> LiveCodeKind:
        return LiveCodeKind.STORE if self.routes is None else LiveCodeKind.STAFF


WELCOME = "{{ name }}您好，我是栖梧的{{ staff_name }}～您的「{{ hook }}」已备好，回复「1」告诉我尺码就给您安排 🎁"
STORE_WELCOME = "{{ name }}您好，欢迎来到{{ store_name }}！我是您的专属导购{{ staff_name }}，{{ hook }}随时找我～"
GROUP_WELCOME = "欢迎加入栖梧穿搭福利群～每周三上新抢先看，{{ hook }}在群公告里领取"
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]

# Online channels route over the online team; 短信 and 老带新 also have a code for the shops'
# 导购 (customers near a store pick theirs). The package-card code carries the hook test.
ONLINE_CODES = (
    CodeSetup(
        "pkgcard", "包裹卡 · 秋冬新品包裹", "包裹卡",
        (RouteSetup("QiwuMia", 2, 80), RouteSetup("QiwuCoco", 2, 80), RouteSetup("QiwuYuki", 1, 40),
         RouteSetup("QiwuLily", 1, 40), RouteSetup("QiwuNana", backup=True)),
        rotation=RotationMode.WEIGHTED, welcome=WELCOME,
    ),
    CodeSetup(
        "xhs", "小红书 · KOL 种草笔记", "小红书",
        (RouteSetup("QiwuMia", shift=RouteShift.WORKING), RouteSetup("QiwuCoco", shift=RouteShift.WORKING),
         RouteSetup("QiwuIvy", shift=RouteShift.OFF_HOURS), RouteSetup("QiwuNana", backup=True)),
        schedule=({"days": EVERY_DAY, "start": "09:00", "end": "22:00"},), welcome=WELCOME,
    ),
    CodeSetup(
        "douyin", "抖音 · 信息流落地页", "抖音",
        (RouteSetup("QiwuYuki", cap=25), RouteSetup("QiwuLily", cap=25), RouteSetup("QiwuNana", backup=True)),
        welcome=WELCOME,
    ),
    CodeSetup("sms", "短信 · 会员回归礼", "短信", (RouteSetup("QiwuYuki"), RouteSetup("QiwuLily")), welcome=WELCOME),
    CodeSetup("sms-store", "短信 · 就近门店导购", "短信", None, welcome=STORE_WELCOME),
    CodeSetup(
        "mp", "公众号 · 菜单「专属顾问」", "公众号",
        (RouteSetup("QiwuYuki"), RouteSetup("QiwuLily"), RouteSetup("QiwuMia"), RouteSetup("QiwuCoco")),
        welcome=WELCOME,
    ),
    CodeSetup(
        "referral", "老带新 · 好友推荐", "老带新", (RouteSetup("QiwuMia"), RouteSetup("QiwuCoco")), welcome=WELCOME
    ),
    CodeSetup("referral-store", "老带新 · 门店导购推荐", "老带新", None, welcome=STORE_WELCOME),
    CodeSetup(
        "tmall", "天猫旗舰店 · 客服卡片", "天猫旗舰店",
        (RouteSetup("QiwuNana", 2), RouteSetup("QiwuCoco"), RouteSetup("QiwuYuki")),
        rotation=RotationMode.RANDOM, welcome=WELCOME,
    ),
)  # fmt: skip
STORE_CODE_NAME = "{store} · 门店活码"
"""One code per shop (channel 门店) over its three 导购, for posters and counters."""


@dataclass(frozen=True)
class GroupSetup:
    name: str
    member_limit: int
    member_count: int
    until_days_ago: int
    """Joins before this many days ago went to this group (then it filled up)."""


GROUP_CODE_NAME = "栖梧穿搭福利群 · 群活码"
GROUP_CODE_CHANNEL = "公众号"
GROUP_OWNER = "QiwuIvy"
GROUP_CODE_STARTED_DAYS_AGO = 240
GROUPS = (
    GroupSetup("栖梧穿搭福利 1 群", 500, 500, 120),
    GroupSetup("栖梧穿搭福利 2 群", 200, 200, 30),
    GroupSetup("栖梧穿搭福利 3 群", 200, 183, 0),  # nearly full: the console warns before all are
)
GROUP_JOIN_RATE = 0.03
"""Share of customers with a staff member who also joined a group through the group code."""
GROUP_SCANS_PER_JOIN = 0.5
"""Scans of the group code that joined no group, per join."""


@dataclass(frozen=True)
class TrialSetup:
    """The finished A/B test of two package-card hooks."""

    name: str = "包裹卡钩子 A/B：免费小样 vs 5元无门槛券"
    hypothesis: str = "收到包裹的客户更想要「5元无门槛券」而不是「免费小样」：添加率能提升 18% 以上"
    code_key: str = "pkgcard"
    baseline_rate: float = 0.28
    minimum_detectable_effect: float = 0.18
    started_days_ago: int = 42
    days: int = 21
    arms: tuple[tuple[str, str, float, dict[str, str]], ...] = field(
        default=(
            ("A", "免费小样（对照）", 0.28, {
                "hook": "免费小样",
                "welcome_text": "{{ name }}您好，我是{{ staff_name }}～回复「小样」即可领取免费小样一份 🎁",
            }),
            ("B", "5元无门槛券", 0.33, {
                "hook": "5元无门槛券",
                "welcome_text": "{{ name }}您好，我是{{ staff_name }}～5元无门槛券已放进您的卡包，下单直接抵扣",
            }),
        )
    )  # fmt: skip
    """(key, name, add rate drawn, content); the first arm is the control."""
    boost: float = 3.0
    """Package cards weigh this much more among new adds during the test (双11 预售 parcels)."""


TRIAL = TrialSetup()

USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.53(0x18003531) NetType/5G Language/zh_CN",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.44(0x18002c2d) NetType/4G Language/zh_CN",
    "Mozilla/5.0 (Linux; Android 14; V2309A Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/122.0.6261.120 Mobile Safari/537.36 XWEB/1220067 MMWEBSDK/20240404 MicroMessenger/8.0.49"
    ".2600(0x28003133) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64",
    "Mozilla/5.0 (Linux; Android 13; 23049RAD8C Build/TKQ1.221114.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MicroMessenger/8.0.47"
    ".2560(0x28002F35) WeChat/arm64 Weixin NetType/5G Language/zh_CN ABI/arm64",
    "Mozilla/5.0 (Linux; Android 14; PJZ110 Build/UKQ1.230924.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/126.0.6478.188 Mobile Safari/537.36 XWEB/1260117 MMWEBSDK/20240801 MicroMessenger/8.0.51"
    ".2720(0x28003355) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64",
    "Mozilla/5.0 (Linux; Android 12; HarmonyOS; NOH-AN00; HMSCore 6.13.0.302) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/114.0.5735.196 Mobile Safari/537.36 MMWEBSDK/20240301 MicroMessenger/8.0.48"
    ".2580(0x28003036) WeChat/arm64 Weixin NetType/4G Language/zh_CN ABI/arm64",
)
USER_AGENT_WEIGHTS = (22, 20, 10, 14, 12, 12, 10)
