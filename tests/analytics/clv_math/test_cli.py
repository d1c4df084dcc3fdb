"""`siyu analytics clv` through typer's CliRunner: fit, per-customer CSV, JSON, bad rows."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from siyu.analytics.clv.simulate import simulate_transactions
from siyu.cli import app

BG = SimpleNamespace(r=0.25, alpha=4.0, a=0.8, b=2.5)
GG = SimpleNamespace(p=6.0, q=4.0, v=15.0)


@pytest.fixture(scope="module")
def orders_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ids, days, amounts = simulate_transactions(
        BG, GG, 3_000, np.random.default_rng(4), start=date(2025, 1, 1), days=365, acquisition_days=90
    )
    path = tmp_path_factory.mktemp("clv") / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("customer_id,date,amount,note\n")  # an extra column is ignored
        for i, d, a in zip(ids.tolist(), days.astype(str).tolist(), amounts.tolist(), strict=True):
            fh.write(f"{i},{d},{a},x\n")
    return path


def test_fit_prints_parameters_and_writes_the_customer_table(orders_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "customers.csv"

    result = CliRunner().invoke(
        app,
        [
            "analytics", "clv", "--orders", str(orders_file), "--calibration-end", "2025-09-30",
            "--holdout-end", "2025-12-31", "--horizon-days", "182", "--out", str(out),
        ],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "BG/NBD      r=" in result.stdout and "Gamma-Gamma p=" in result.stdout
    assert "holdout     frequency" in result.stdout and "7+" in result.stdout
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "customer_id", "frequency", "recency", "T", "monetary",
        "expected_purchases", "p_alive", "expected_spend", "expected_value",
    ]  # fmt: skip
    assert len(rows) == 3_000  # everyone's first purchase is within the first 90 days
    for row in rows[:50]:
        purchases, spend, value = (float(row[k]) for k in ("expected_purchases", "expected_spend", "expected_value"))
        assert 0 <= float(row["p_alive"]) <= 1
        assert value == pytest.approx(purchases * spend, rel=1e-5, abs=1e-5)  # 6 decimals in the file
    assert f"wrote 3000 customers to {out}" in result.stdout


def test_json_output_is_one_object(orders_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.csv"

    result = CliRunner().invoke(
        app,
        ["analytics", "clv", "--orders", str(orders_file), "--calibration-end", "2025-12-31", "--time-unit", "day",
         "--out", str(out), "--json"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["customers"] == 3_000 and body["time_unit"] == "day" and body["holdout"] == []
    assert set(body["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(body["gamma_gamma"]) == {"p", "q", "v", "log_likelihood", "customers"}
    # rates are per day now: α is about 7 times the weekly 4
    assert 15 < body["bgnbd"]["alpha"] < 45
    assert body["out"] == str(out) and out.exists()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("customer_id,date,amount\n1,2025-01-01,5\n2,2025-13-01,5\n", [], "line 3: date '2025-13-01'"),
        # fromisoformat takes these two; numpy read the first as year 20,250,102 and crashed on the second
        ("customer_id,date,amount\n1,2025-01-01,5\n2,20250102,5\n", [], "line 3: date '20250102' is not YYYY-MM-DD"),
        ("customer_id,date,amount\n1,2025-01-01,5\n2,2025-W01-1,5\n", [], "line 3: date '2025-W01-1' is not"),
        ("customer_id,date,amount\n1,2025-01-01,5\n", ["--holdout-end", "20251231"], "--holdout-end: expected a date"),
        ("customer_id,date,amount\n1,2025-01-01,5\nabc,2025-01-02,5\n", [], "line 3: customer_id 'abc'"),
        ("customer_id,date,amount\n1,2025-01-01,-5\n", [], "line 2: amount '-5'"),
        ("customer_id,date,amount\n1,2025-01-01,ten\n", [], "line 2: amount 'ten' is not a number"),
        ("customer_id,date,amount\n1,2025-01-01\n", [], "line 2: expected at least 3 columns"),
        ("id,day,amount\n1,2025-01-01,5\n", [], "line 1: the header lacks customer_id, date"),
        ("", [], "is empty"),
        ("customer_id,date,amount\n", [], "has no order rows"),
        ("customer_id,date,amount\n1,2025-01-01,5\n", ["--time-unit", "month"], "--time-unit"),
        ("customer_id,date,amount\n1,2025-01-01,5\n", ["--holdout-end", "2025-01-01"], "--holdout-end must be after"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(tmp_path: Path, content: str, args: list[str], message: str) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "never.csv"

    result = CliRunner().invoke(
        app, ["analytics", "clv", "--orders", str(path), "--calibration-end", "2025-06-30", "--out", str(out), *args]
    )

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_bad_calibration_date_and_missing_file_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_date = runner.invoke(app, ["analytics", "clv", "--orders", "x.csv", "--calibration-end", "30/06/2025"])
    assert bad_date.exit_code == 2 and "--calibration-end: expected a date as YYYY-MM-DD" in bad_date.output
    missing = runner.invoke(
        app, ["analytics", "clv", "--orders", str(tmp_path / "nope.csv"), "--calibration-end", "2025-06-30"]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_too_few_repeat_buyers_exits_1_with_the_reason(tmp_path: Path) -> None:
    # three customers, one order each: nobody repeats
    path = tmp_path / "orders.csv"
    path.write_text("customer_id,date,amount\n1,2025-01-01,5\n2,2025-01-02,6\n3,2025-01-03,7\n", encoding="utf-8")

    result = CliRunner().invoke(
        app,
        ["analytics", "clv", "--orders", str(path), "--calibration-end", "2025-06-30", "--out", str(tmp_path / "o")],
    )

    assert result.exit_code == 1
    assert "cannot fit BG/NBD: need at least 2 customers with a repeat purchase" in result.output


def test_no_spend_model_leaves_spend_blank_not_nan(tmp_path: Path) -> None:
    # repeat buyers all spend 10 per repeat day: Gamma-Gamma cannot be fitted, BG/NBD can.
    # 1: 01-01, 01-15, 02-01 → x=2; 2: 01-05, 03-01 → x=1; 3: 02-10 only → x=0 (calibration end 06-30).
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,date,amount\n"
        "1,2025-01-01,3\n1,2025-01-15,10\n1,2025-02-01,10\n2,2025-01-05,4\n2,2025-03-01,10\n3,2025-02-10,8\n",
        encoding="utf-8",
    )
    out = tmp_path / "c.csv"

    result = CliRunner().invoke(
        app, ["analytics", "clv", "--orders", str(path), "--calibration-end", "2025-06-30", "--out", str(out), "--json"]
    )

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["gamma_gamma"] is None and "same mean spend" in body["gamma_gamma_error"]
    lines = out.read_text(encoding="utf-8").splitlines()
    # customer 1: x=2, recency 31 days = 4.428571 weeks, T 180 days = 25.714286 weeks, monetary 10
    assert lines[1].startswith("1,2,4.428571,25.714286,10.000000,")
    assert lines[1].endswith(",,") and "nan" not in out.read_text(encoding="utf-8")


def test_customer_ids_above_2_to_the_53_are_written_exactly(tmp_path: Path) -> None:
    big = 9007199254740993  # 2^53 + 1: a float64 column would write 9007199254740992
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,date,amount\n"
        f"{big},2025-01-01,3\n{big},2025-01-15,10\n{big},2025-02-01,12\n2,2025-01-05,4\n2,2025-03-01,10\n"
        "3,2025-02-10,8\n",
        encoding="utf-8",
    )
    out = tmp_path / "c.csv"

    result = CliRunner().invoke(
        app, ["analytics", "clv", "--orders", str(path), "--calibration-end", "2025-06-30", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as fh:
        ids = [row["customer_id"] for row in csv.DictReader(fh)]
    assert ids == ["2", "3", str(big)]


def test_a_fit_stuck_at_the_parameter_bound_exits_1_with_the_reason(tmp_path: Path) -> None:
    # 40 customers buying at nearly one rate: the fit pushes alpha to e^20 and used to write
    # 0 expected purchases for everyone (with P(alive) ≈ 0.4 next to it) and exit 0
    ids, days, amounts = simulate_transactions(
        SimpleNamespace(r=5e4, alpha=5e5, a=0.8, b=2.5), GG, 40, np.random.default_rng(3),
        start=date(2025, 1, 1), days=365, acquisition_days=90,
    )  # fmt: skip
    path = tmp_path / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("customer_id,date,amount\n")
        for i, d, a in zip(ids.tolist(), days.astype(str).tolist(), amounts.tolist(), strict=True):
            fh.write(f"{i},{d},{a}\n")
    out = tmp_path / "c.csv"

    result = CliRunner().invoke(
        app,
        [
            "analytics", "clv", "--orders", str(path), "--calibration-end", "2025-12-31", "--time-unit", "day",
            "--out", str(out),
        ],
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    assert "cannot fit BG/NBD: the BG/NBD fit ran to the edge of the allowed parameter range (alpha" in result.output
    assert not out.exists()


def test_non_finite_predictions_exit_1_instead_of_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import siyu.analytics.clv.cli as clv_cli

    monkeypatch.setattr(clv_cli, "expected_purchases", lambda m, t, f, r, big_t: np.full(np.shape(f), np.nan))
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,date,amount\n1,2025-01-01,3\n1,2025-01-15,10\n1,2025-02-01,12\n2,2025-01-05,4\n"
        "2,2025-03-01,10\n3,2025-02-10,8\n",
        encoding="utf-8",
    )
    out = tmp_path / "c.csv"

    result = CliRunner().invoke(
        app, ["analytics", "clv", "--orders", str(path), "--calibration-end", "2025-06-30", "--out", str(out)]
    )

    assert result.exit_code == 1, result.output
    assert "unusable BG/NBD fit: the fitted BG/NBD gives no finite expected purchases for 3 of 3 customers" in (
        result.output
    )
    assert not out.exists()
