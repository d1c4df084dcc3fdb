"""Chinese personal names for demo customers: surnames by frequency, given names by generation."""

from __future__ import annotations

import random
from itertools import accumulate

from siyu.models import Gender

# The most common surnames, roughly in order of frequency; earlier ones are drawn more often.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_SURNAME_CUM_WEIGHTS = tuple(accumulate(1.0 / (rank + 8) for rank in range(len(SURNAMES))))

# Given names popular for women born 1990–2008.
FEMALE_GIVEN = (
    "子涵", "欣怡", "梓涵", "诗涵", "一诺", "雨桐", "思涵", "可馨", "佳怡", "梦瑶", "雨欣", "婉清", "晓雯",
    "静怡", "思琪", "雅婷", "佳琪", "心怡", "语嫣", "若曦", "梓萱", "诗雨", "紫涵", "嘉怡", "晨曦", "欣然",
    "雨萱", "佳欣", "婧", "琳", "颖", "璐", "倩", "悦", "瑶", "丹", "蕾", "萌", "洁", "敏", "婷", "雪",
    "晓彤", "梦洁", "艺涵", "子琪", "诗琪", "睿涵", "安琪", "思雨", "佳宁", "文静", "晓敏", "雅琪", "乐瑶",
    "沐晴", "芷若", "书瑶", "语桐", "清妍", "亦菲", "梓琳", "欣妍", "舒婷", "曼琳", "嘉琪", "思彤", "楚瑶",
)  # fmt: skip
MALE_GIVEN = (
    "浩然", "子轩", "宇轩", "俊杰", "梓豪", "博文", "一鸣", "晨阳", "家豪", "志强", "皓轩", "明轩",
    "宇航", "子墨", "俊熙", "天佑", "嘉懿", "思远", "鑫", "磊", "涛", "超", "昊", "杰",
)  # fmt: skip
# WeChat nicknames: what a CRM holds when nobody typed a real name.
NICKNAMES = (
    "Momo", "小鹿乱撞", "Cici", "橙子🍊", "芝士奶盖", "Yuki", "阿紫", "Vivian", "一颗柠檬", "晴天",
    "Lulu", "小番茄", "糖糖", "Sunny", "Echo", "奶茶续命", "喵了个咪", "Amber", "桃桃乌龙", "木子",
    "Kiki", "Grace", "栗子", "森林里的鹿", "Chloe", "小太阳☀", "Nina", "半糖", "Zoe", "兔兔",
)  # fmt: skip


def person_name(rng: random.Random, gender: Gender) -> str:
    """A realistic name for `gender`: mostly surname + given name, sometimes a WeChat nickname."""
    if rng.random() < 0.08:
        return rng.choice(NICKNAMES)
    surname = rng.choices(SURNAMES, cum_weights=_SURNAME_CUM_WEIGHTS)[0]
    pool = MALE_GIVEN if gender is Gender.MALE else FEMALE_GIVEN
    return surname + rng.choice(pool)
