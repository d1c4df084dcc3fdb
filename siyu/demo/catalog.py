"""The demo brand's fixed cast: organisation, console users, tags, attributes, channels, places.

Everything here is constant data; the random parts (customers, their histories) are drawn in
`siyu.demo.people` from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

from siyu.models import AttributeType, Role

BRAND_NAME = "栖梧 QIWU 女装"
DEMO_DOMAIN = "demo.siyu.local"
DEMO_EMAIL = f"admin@{DEMO_DOMAIN}"
DEMO_PASSWORD = "siyu-demo-2026"

REGIONS = ("华东", "华南", "华北")


@dataclass(frozen=True)
class StoreSpec:
    code: str
    name: str
    city: str
    region: str


STORES = (
    StoreSpec("SH01", "上海静安嘉里中心店", "上海", "华东"),
    StoreSpec("SH02", "上海环球港店", "上海", "华东"),
    StoreSpec("HZ01", "杭州湖滨银泰in77店", "杭州", "华东"),
    StoreSpec("NJ01", "南京德基广场店", "南京", "华东"),
    StoreSpec("GZ01", "广州天河太古汇店", "广州", "华南"),
    StoreSpec("SZ01", "深圳万象天地店", "深圳", "华南"),
    StoreSpec("BJ01", "北京三里屯太古里店", "北京", "华北"),
    StoreSpec("TJ01", "天津大悦城店", "天津", "华北"),
)

# Three 导购 per store, then the online styling team (no store). (name, WeCom userid)
STORE_STAFF: dict[str, tuple[tuple[str, str], ...]] = {
    "SH01": (("林晓雨", "LinXiaoYu"), ("周婧", "ZhouJing"), ("陈思琪", "ChenSiQi")),
    "SH02": (("王雅婷", "WangYaTing"), ("顾佳怡", "GuJiaYi"), ("沈梦瑶", "ShenMengYao")),
    "HZ01": (("徐静怡", "XuJingYi"), ("蒋欣然", "JiangXinRan"), ("吴诗涵", "WuShiHan")),
    "NJ01": (("孙悦", "SunYue"), ("朱丹妮", "ZhuDanNi"), ("刘子涵", "LiuZiHan")),
    "GZ01": (("黄晓彤", "HuangXiaoTong"), ("梁嘉欣", "LiangJiaXin"), ("何婉清", "HeWanQing")),
    "SZ01": (("郑可馨", "ZhengKeXin"), ("谢雨桐", "XieYuTong"), ("罗佳琪", "LuoJiaQi")),
    "BJ01": (("张萌", "ZhangMeng"), ("李若曦", "LiRuoXi"), ("赵一诺", "ZhaoYiNuo")),
    "TJ01": (("杨璐", "YangLu"), ("高雪", "GaoXue"), ("马晓雯", "MaXiaoWen")),
}
ONLINE_STAFF = (
    ("小栖 · 穿搭顾问 Mia", "QiwuMia"),
    ("小栖 · 穿搭顾问 Coco", "QiwuCoco"),
    ("小栖 · 会员顾问 Yuki", "QiwuYuki"),
    ("小栖 · 会员顾问 Lily", "QiwuLily"),
    ("小栖 · 售后顾问 Nana", "QiwuNana"),
    ("小栖 · 社群主理人 Ivy", "QiwuIvy"),
)


@dataclass(frozen=True)
class UserSpec:
    email: str
    name: str
    role: Role
    store_code: str | None = None
    """For store managers: the store they run."""
    staff_wecom_user_id: str | None = None
    """For staff users: the staff member they are."""


USERS = (
    UserSpec(DEMO_EMAIL, "品牌管理员", Role.ADMIN),
    UserSpec(f"operator@{DEMO_DOMAIN}", "私域运营 · 苏苏", Role.OPERATOR),
    UserSpec(f"analyst@{DEMO_DOMAIN}", "数据分析 · 阿哲", Role.ANALYST),
    UserSpec(f"manager.sh01@{DEMO_DOMAIN}", "静安店长 · 方蕾", Role.STORE_MANAGER, store_code="SH01"),
    UserSpec(f"staff.linxiaoyu@{DEMO_DOMAIN}", "林晓雨", Role.STAFF, staff_wecom_user_id="LinXiaoYu"),
)

# (group, colour, tags); the first groups are the ones customers get by rule.
TAG_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("来源", "#206bc4", ("包裹卡", "小红书", "抖音", "门店", "短信", "公众号", "老带新", "天猫旗舰店")),
    ("风格偏好", "#d63939", ("通勤", "甜美", "街头", "极简", "法式", "新中式")),
    ("尺码", "#2fb344", ("XS", "S", "M", "L", "XL")),
    ("价格敏感度", "#f76707", ("高敏感", "中敏感", "低敏感")),
    ("生命周期", "#ae3ec9", ("新客", "首单客", "复购客", "沉睡客", "已流失")),
    ("兴趣", "#0ca678", ("穿搭", "护肤", "美妆", "健身", "旅行", "咖啡", "宠物")),
)

# (key, label, type)
ATTRIBUTES = (
    ("body_size", "体型尺码", AttributeType.STRING),
    ("preferred_style", "偏好风格", AttributeType.STRING),
    ("vip_card_no", "VIP 卡号", AttributeType.STRING),
)


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    weight: int
    """Share of new customers (from the channel's launch, see `siyu.demo.channels`)."""
    online: float
    """Share of adds that land with the online team rather than a store 导购: channels with a
    store code (短信, 老带新) send customers near a shop to its 导购; the others scan a code of
    the online team, and 门店 customers scan their shop's code."""


CHANNELS = (
    ChannelSpec("包裹卡", 24, 1.0),
    ChannelSpec("门店", 20, 0.0),
    ChannelSpec("小红书", 14, 1.0),
    ChannelSpec("抖音", 12, 1.0),
    ChannelSpec("短信", 8, 0.4),
    ChannelSpec("公众号", 8, 1.0),
    ChannelSpec("老带新", 8, 0.3),
    ChannelSpec("天猫旗舰店", 6, 1.0),
)

# (province, city, region or None, weight): store cities weigh most.
CITIES: tuple[tuple[str, str, str | None, int], ...] = (
    ("上海", "上海", "华东", 16),
    ("浙江", "杭州", "华东", 10),
    ("江苏", "南京", "华东", 7),
    ("江苏", "苏州", "华东", 6),
    ("浙江", "宁波", "华东", 3),
    ("江苏", "无锡", "华东", 2),
    ("安徽", "合肥", "华东", 3),
    ("山东", "青岛", "华东", 2),
    ("福建", "厦门", "华东", 2),
    ("广东", "广州", "华南", 10),
    ("广东", "深圳", "华南", 10),
    ("广东", "东莞", "华南", 3),
    ("广东", "佛山", "华南", 2),
    ("广西", "南宁", "华南", 2),
    ("海南", "海口", "华南", 1),
    ("北京", "北京", "华北", 10),
    ("天津", "天津", "华北", 5),
    ("河北", "石家庄", "华北", 2),
    ("山西", "太原", "华北", 1),
    ("四川", "成都", None, 4),
    ("湖北", "武汉", None, 4),
    ("湖南", "长沙", None, 3),
    ("重庆", "重庆", None, 3),
    ("陕西", "西安", None, 2),
    ("河南", "郑州", None, 2),
)

# Mobile prefixes `phonenumbers` accepts as valid mainland numbers.
PHONE_PREFIXES = (
    "130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "157",
    "158", "159", "166", "175", "176", "177", "180", "181", "182", "183", "185", "186", "187",
    "188", "189", "191", "198", "199",
)  # fmt: skip

BODY_SIZES = ("XS / 155cm", "S / 160cm", "S / 163cm", "M / 165cm", "M / 168cm", "L / 170cm", "XL / 172cm")
SIZE_TAG_BY_BODY = {"XS": "XS", "S": "S", "M": "M", "L": "L", "XL": "XL"}
STYLES = ("通勤", "甜美", "街头", "极简", "法式", "新中式")
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "foxmail.com", "gmail.com", "icloud.com")

PAGES = (
    ("/h5/home", "栖梧会员中心"),
    ("/h5/new-arrivals", "本周上新"),
    ("/h5/lookbook/autumn", "秋冬通勤穿搭 Lookbook"),
    ("/h5/points-mall", "积分商城"),
    ("/h5/member-day", "会员日 · 每月 18 号"),
    ("/h5/size-guide", "尺码助手"),
)
CONTENTS = (
    "3 套针织开衫的一周通勤搭配",
    "小个子显高穿搭公式",
    "新中式盘扣上衣怎么搭才不老气",
    "极简风胶囊衣橱：10 件穿一季",
    "甜美风约会穿搭合集",
    "羊毛大衣保养小课堂",
)
CONTENT_VIA = ("朋友圈", "群发", "社群", "公众号")
COUPONS = ("新人礼 满199减30", "会员日 8.5 折券", "生日礼 50 元券", "老带新 双方各得 30 元", "包裹卡 复购 20 元券")
