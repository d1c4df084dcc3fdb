"""`siyu analytics clv`: fit BG/NBD and Gamma-Gamma to an orders CSV, no server or database needed.

Input: a CSV with a header naming the columns customer_id, date (YYYY-MM-DD, the brand-local
purchase day) and amount (≥ 0, any currency unit); other columns are ignored. Output: the fitted
parameters on the terminal (or one JSON object with --json) and a per-customer CSV.
Exit codes: 0 done, 1 the data cannot support a fit, 2 bad arguments or a bad row (line number said).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from siyu.analytics.clv.models import (
    BgNbd,
    GammaGamma,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    holdout_validation,
    p_alive,
)
from siyu.analytics.clv.summary import TIME_UNITS, Summary, summarize, unit_days

__all__ = ["clv", "read_orders"]

REQUIRED_COLUMNS = ("customer_id", "date", "amount")
OUTPUT_COLUMNS = (
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary",
    "expected_purchases",
    "p_alive",
    "expected_spend",
    "expected_value",
)


_DAY = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
)  # exactly YYYY-MM-DD: fromisoformat alone also takes 20240101, 2024-W01-1


class BadInput(Exception):
    """A problem with the arguments or the orders file; the message says where."""


def _parse_day(text: str, what: str) -> date:
    stripped = text.strip()
    try:
        if _DAY.fullmatch(stripped) is None:
            raise ValueError(stripped)
        return date.fromisoformat(stripped)
    except ValueError:
        raise BadInput(f"{what}: expected a date as YYYY-MM-DD, got {text!r}") from None


def read_orders(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read customer_id, date, amount columns into arrays; BadInput names the line of a bad row."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    ids: list[int] = []
    days: list[date] = []
    amounts: list[float] = []
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise BadInput(f"{path} is empty: a header customer_id,date,amount is required")
        names = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise BadInput(f"line 1: the header lacks {', '.join(missing)} (need customer_id,date,amount)")
        i_id, i_day, i_amt = (names.index(c) for c in REQUIRED_COLUMNS)
        width = max(i_id, i_day, i_amt) + 1
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < width:
                raise BadInput(f"line {line}: expected at least {width} columns, got {len(row)}")
            try:
                ids.append(int(row[i_id].strip()))
            except ValueError:
                raise BadInput(f"line {line}: customer_id {row[i_id]!r} is not a whole number") from None
            try:
                days.append(_parse_day(row[i_day], "date"))
            except BadInput:
                raise BadInput(f"line {line}: date {row[i_day]!r} is not YYYY-MM-DD") from None
            try:
                amount = float(row[i_amt].strip())
            except ValueError:
                raise BadInput(f"line {line}: amount {row[i_amt]!r} is not a number") from None
            if not math.isfinite(amount) or amount < 0:
                raise BadInput(f"line {line}: amount {row[i_amt]!r} must be a finite number ≥ 0")
            amounts.append(amount)
    if not ids:
        raise BadInput(f"{path} has no order rows")
    return (
        np.array(ids, dtype=np.int64),
        np.array(days, dtype="datetime64[D]"),  # from parsed dates, never from the raw text
        np.array(amounts, dtype=np.float64),
    )


class Unusable(Exception):
    """The fitted model cannot give usable predictions; the message says why (exit code 1)."""


def _predict(s: Summary, bg: BgNbd, gg: GammaGamma | None, horizon: float) -> dict[str, np.ndarray]:
    """Per-customer predictions; `Unusable` if any expected purchase count is not a finite number."""
    purchases = expected_purchases(bg, horizon, s.frequency, s.recency, s.T)
    bad = int((~np.isfinite(purchases)).sum())
    if bad:
        raise Unusable(f"the fitted BG/NBD gives no finite expected purchases for {bad} of {len(s)} customers")
    alive = p_alive(bg, s.frequency, s.recency, s.T)
    spend = expected_spend(gg, s.frequency, s.monetary) if gg is not None else np.zeros(len(s))
    return {
        "expected_purchases": purchases,
        "p_alive": alive,
        "expected_spend": spend,
        "expected_value": purchases * spend,
    }


def _write_customers(path: Path, s: Summary, predicted: dict[str, np.ndarray], with_spend: bool) -> None:
    """One row per customer; a structured array keeps the int64 ids exact (a float column would round ids > 2^53)."""
    names = ["frequency", "recency", "T", "monetary", "expected_purchases", "p_alive"]
    row_format = "%d,%d" + ",%.6f" * 5
    if with_spend:
        names += ["expected_spend", "expected_value"]
        row_format += ",%.6f,%.6f"
    else:
        row_format += ",,"  # no spend model: spend and value left blank, never "nan"
    table = np.empty(len(s), dtype=[("customer_id", np.int64)] + [(name, np.float64) for name in names])
    table["customer_id"] = s.customer_ids
    sources = {"frequency": s.frequency, "recency": s.recency, "T": s.T, "monetary": s.monetary}
    for name in names:
        table[name] = sources[name] if name in sources else predicted[name]
    with path.open("w", encoding="utf-8", newline="") as fh:
        np.savetxt(fh, table, fmt=row_format, header=",".join(OUTPUT_COLUMNS), comments="")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def clv(
    orders: Annotated[Path, typer.Option("--orders", help="CSV with header customer_id,date,amount.")],
    calibration_end: Annotated[str, typer.Option("--calibration-end", help="Last day of the calibration period.")],
    time_unit: Annotated[str, typer.Option("--time-unit", help="week or day.")] = "week",
    holdout_end: Annotated[
        str | None, typer.Option("--holdout-end", help="Last day of the holdout period (validation table).")
    ] = None,
    horizon_days: Annotated[int, typer.Option("--horizon-days", help="Prediction horizon in days.")] = 365,
    out: Annotated[Path, typer.Option("--out", help="Per-customer CSV to write.")] = Path("clv-customers.csv"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Fit BG/NBD and Gamma-Gamma to an orders CSV."""
    try:
        if time_unit not in TIME_UNITS:
            raise BadInput(f"--time-unit must be one of {', '.join(TIME_UNITS)}, not {time_unit!r}")
        if horizon_days < 1:
            raise BadInput("--horizon-days must be ≥ 1")
        cal = _parse_day(calibration_end, "--calibration-end")
        hold = _parse_day(holdout_end, "--holdout-end") if holdout_end is not None else None
        if hold is not None and hold <= cal:
            raise BadInput("--holdout-end must be after --calibration-end")
        ids, days, amounts = read_orders(orders)
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None

    unit = unit_days(time_unit)
    s = summarize(ids, days, amounts, calibration_end=cal, time_unit=time_unit, holdout_end=hold)
    try:
        bg = fit_bgnbd(s.frequency, s.recency, s.T)
    except ValueError as exc:
        typer.echo(f"error: cannot fit BG/NBD: {exc}", err=True)
        raise typer.Exit(code=1) from None
    gg: GammaGamma | None
    gg_error: str | None = None
    try:
        gg = fit_gamma_gamma(s.frequency, s.monetary)
    except ValueError as exc:
        gg, gg_error = None, str(exc)
    try:
        buckets = holdout_validation(bg, s, (hold - cal).days / unit) if hold is not None else []
        if not all(math.isfinite(b.predicted) for b in buckets):
            raise Unusable("the fitted BG/NBD gives no finite holdout predictions")
        totals = _predict(s, bg, gg, horizon_days / unit)
    except Unusable as exc:
        typer.echo(f"error: unusable BG/NBD fit: {exc}", err=True)
        raise typer.Exit(code=1) from None
    _write_customers(out, s, totals, gg is not None)

    result: dict[str, Any] = {
        "customers": len(s),
        "repeat_customers": int((s.frequency > 0).sum()),
        "calibration_end": cal.isoformat(),
        "holdout_end": hold.isoformat() if hold is not None else None,
        "time_unit": time_unit,
        "horizon_days": horizon_days,
        "bgnbd": asdict(bg),
        "gamma_gamma": asdict(gg) if gg is not None else None,
        "gamma_gamma_error": gg_error,
        "holdout": [asdict(b) for b in buckets],
        "expected_purchases_total": float(totals["expected_purchases"].sum()),
        "expected_value_total": float(np.nansum(totals["expected_value"])) if gg is not None else None,
        "out": str(out),
    }
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"customers {len(s)} (repeat buyers {result['repeat_customers']}), time unit {time_unit}")
    typer.echo(
        f"BG/NBD      r={_fmt(bg.r)} alpha={_fmt(bg.alpha)} a={_fmt(bg.a)} b={_fmt(bg.b)} "
        f"log-likelihood={bg.log_likelihood:.3f}"
    )
    if gg is not None:
        typer.echo(
            f"Gamma-Gamma p={_fmt(gg.p)} q={_fmt(gg.q)} v={_fmt(gg.v)} "
            f"log-likelihood={gg.log_likelihood:.3f} (customers {gg.customers})"
        )
    else:
        typer.echo(f"Gamma-Gamma not fitted: {gg_error}")
    if buckets:
        typer.echo("holdout     frequency  customers  predicted  actual")
        for b in buckets:
            typer.echo(f"            {b.label:>9}  {b.customers:>9}  {b.predicted:>9.3f}  {b.actual:>6.3f}")
    typer.echo(f"wrote {len(s)} customers to {out}")
