"""The demo brand's product catalogue: what 栖梧 sells, by category, at the price points orders draw.

Orders draw one price per garment from `siyu.demo.orders.PRICES`; the garment is then one of the
products at that price. Every price point has at least one product, so an order's lines always
add up to its total.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price_fen: int


CATEGORIES = ("T恤", "针织衫", "裤装", "连衣裙", "外套", "配饰")

PRODUCTS = (
    Product("QW-TS-101", "基础圆领纯棉 T 恤", "T恤", 12_900),
    Product("QW-TS-102", "法式条纹短袖 T 恤", "T恤", 15_900),
    Product("QW-TS-103", "新中式盘扣短袖上衣", "T恤", 19_900),
    Product("QW-KN-201", "羊毛混纺打底针织衫", "针织衫", 19_900),
    Product("QW-KN-202", "V 领短款针织开衫", "针织衫", 25_900),
    Product("QW-KN-203", "麻花纹圆领毛衣", "针织衫", 29_900),
    Product("QW-KN-204", "山羊绒高领毛衣", "针织衫", 39_900),
    Product("QW-PT-301", "九分烟管裤", "裤装", 19_900),
    Product("QW-PT-302", "高腰阔腿西装裤", "裤装", 25_900),
    Product("QW-PT-303", "直筒微喇牛仔裤", "裤装", 29_900),
    Product("QW-DR-401", "碎花茶歇连衣裙", "连衣裙", 29_900),
    Product("QW-DR-402", "针织长款连衣裙", "连衣裙", 35_900),
    Product("QW-DR-403", "新中式改良旗袍裙", "连衣裙", 39_900),
    Product("QW-CT-501", "短款牛仔夹克", "外套", 49_900),
    Product("QW-CT-502", "通勤西装外套", "外套", 49_900),
    Product("QW-CT-503", "轻薄白鸭绒羽绒服", "外套", 59_900),
    Product("QW-CT-504", "小香风粗花呢外套", "外套", 59_900),
    Product("QW-CT-505", "双面羊绒长大衣", "外套", 89_900),
    Product("QW-AC-601", "真丝发圈三件套", "配饰", 12_900),
    Product("QW-AC-602", "羊毛格纹围巾", "配饰", 15_900),
    Product("QW-AC-603", "真皮腋下包", "配饰", 35_900),
)


def _by_price() -> dict[int, tuple[Product, ...]]:
    grouped: dict[int, list[Product]] = {}
    for product in PRODUCTS:
        grouped.setdefault(product.price_fen, []).append(product)
    return {price: tuple(products) for price, products in grouped.items()}


BY_PRICE = _by_price()
"""The products at each price point."""
