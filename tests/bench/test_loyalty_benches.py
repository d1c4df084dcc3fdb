"""`siyu bench orders` and `siyu bench redeem`, shrunk: the agreed JSON shape, exact outcomes, and the
counters that must be 0 (ledger mismatches, overdrafts, stock below zero).

The orders bench's outcome is a pure function of its generator, so the expected customers, members,
tiers, repurchasers and points are recomputed here from the rules (1 point per yuan of net spend
× the multiplier of the tier held before the order; tiers on spend over 365 days, upgraded at once;
a repurchaser has two or more orders paid after joining the pool — new buyers join when their first
order arrives, after it was paid, so only pool customers repurchase).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from typing import Any

import pytest
from typer.testing import CliRunner

from bench import harness, orders_bench, redeem_bench, run_bench
from siyu.cli import app
from tests.conftest import PG_URL

DATABASES = [None] + ([PG_URL] if PG_URL else [])
ORDERS = 200
RESULT_ROW = {"name", "seconds", "baseline_seconds", "ratio", "rows_per_s"}


def expected_orders(orders: int) -> dict[str, Any]:
    pool = orders // orders_bench.POOL_SHARE
    spend: defaultdict[int, int] = defaultdict(int)
    rank: dict[int, int] = {}
    bought: Counter[int] = Counter()
    points = 0
    for spec in orders_bench.specs(orders, pool):
        buyer = spec.buyer
        multiplier = orders_bench.TIERS[rank.get(buyer, 0)][3]
        points += spec.total_fen * multiplier // 10_000
        spend[buyer] += spec.total_fen
        met = max(r for _, r, threshold, _ in orders_bench.TIERS if spend[buyer] >= threshold)
        rank[buyer] = max(rank.get(buyer, 0), met)
        bought[buyer] += 1
    tiers = Counter(rank.values())
    return {
        "pool_customers": pool,
        "customers_created": len([b for b in bought if b >= pool]),
        "members": len(bought),
        "members_by_tier": {name: tiers[r] for name, r, _, _ in orders_bench.TIERS},
        "repurchasers": sum(1 for b, n in bought.items() if b < pool and n >= 2),
        "points": points,
    }


def check_orders(result: dict[str, Any], database: str) -> None:
    assert (result["bench"], result["size"], result["database"]) == ("orders", "tiny", database)
    [row] = result["results"]
    assert set(row) == RESULT_ROW and row["name"] == "ingest"
    assert row["seconds"] > 0 and row["baseline_seconds"] > 0
    assert math.isclose(row["ratio"], row["seconds"] / row["baseline_seconds"], rel_tol=1e-9)
    assert math.isclose(row["rows_per_s"], ORDERS / row["seconds"], rel_tol=1e-3)
    # every order went in once, through identity resolution, points and tiers
    assert result["outcomes"] == {"created": ORDERS}
    assert (result["orders"], result["orders_stored"]) == (ORDERS, ORDERS)
    expected = expected_orders(ORDERS)
    assert expected["customers_created"] == orders_bench.expected_new_customers(ORDERS, expected["pool_customers"])
    assert {key: result[key] for key in expected} == expected
    assert result["ledger_mismatches"] == 0
    assert result["orders_per_s"] > 0 and result["raw_orders_per_s"] > 0
    assert set(result["peak_mb"]) == {"raw_insert", "ingest"}


@pytest.mark.parametrize("url", DATABASES, ids=lambda url: "sqlite" if url is None else "postgresql")
def test_orders_bench(url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the tiny size shrunk to 200 orders (50 pool customers)
    monkeypatch.setitem(harness.SIZES, "tiny", ORDERS)
    # when the bench runs, then its outcome is exactly what the rules give
    check_orders(run_bench("orders", size="tiny", database_url=url), "sqlite" if url is None else "postgresql")


def test_the_order_stream_is_as_documented() -> None:
    specs = list(orders_bench.specs(2_000, 500))
    assert [s.index for s in specs] == list(range(2_000))
    assert all(a.paid_at < b.paid_at for a, b in itertools.pairwise(specs))
    assert all(s.paid_at < orders_bench.NOW for s in specs)
    from_pool = sum(1 for s in specs if s.buyer < 500)
    assert 0.65 < from_pool / 2_000 < 0.75
    assert all(s.total_fen == sum(orders_bench.price_fen(k) * q for k, q in s.lines) + s.shipping_fen for s in specs)
    assert len({s.external_id for s in specs}) == 2_000


PLAN = redeem_bench.Plan(clients=4, seconds=1.0, members=10, gift_stock=3)


def check_redeem(result: dict[str, Any], database: str) -> None:
    assert (result["bench"], result["size"], result["database"]) == ("redeem", "tiny", database)
    [row] = result["results"]
    assert set(row) == RESULT_ROW and row["name"] == "redeem"
    assert math.isclose(row["ratio"], row["seconds"] / row["baseline_seconds"], rel_tol=1e-9)
    assert (result["clients"], result["members"]) == (PLAN.clients, PLAN.members)
    assert result["seconds"] >= PLAN.seconds
    # every attempt was a redemption or an expected refusal; nothing else went wrong
    assert result["errors"] == 0, result["error_samples"]
    assert result["attempts"] == result["redemptions"] + sum(result["refused"].values())
    assert result["redemptions"] > 0 and result["redemptions_stored"] == result["redemptions"]
    # the ledger held: no overdraft, cache = entries = lots, stock never below 0 and accounted for
    assert (result["overdrafts"], result["ledger_mismatches"]) == (0, 0)
    assert (result["stock_below_zero"], result["stock_mismatches"]) == (0, 0)
    assert result["gifts"] + result["gift_stock_left"] == PLAN.gift_stock
    assert result["points_spent"] == (
        (result["redemptions"] - result["gifts"]) * redeem_bench.PRIVILEGE_PRICE
        + result["gifts"] * redeem_bench.GIFT_PRICE
    )


@pytest.mark.parametrize("url", DATABASES, ids=lambda url: "sqlite" if url is None else "postgresql")
def test_redeem_bench(url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the tiny plan shrunk to 4 clients for 1 s on 10 members and a gift stock of 3
    monkeypatch.setitem(redeem_bench.PLANS, "tiny", PLAN)
    # when the bench runs, then nothing overdrew and every counter is 0
    check_redeem(run_bench("redeem", size="tiny", database_url=url), "sqlite" if url is None else "postgresql")


def test_cli_prints_one_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(redeem_bench.PLANS, "tiny", PLAN)
    result = CliRunner().invoke(app, ["bench", "redeem", "--size", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    check_redeem(json.loads(result.stdout), "sqlite")
