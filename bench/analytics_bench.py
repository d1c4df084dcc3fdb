"""`siyu bench analytics`: the measure pages' computations on the segment benchmark's brand
(1M customers / 3M orders / 10M events at `full`), each against the same figures computed by
polars from a CSV export made in the same run (`bench.analytics_baseline`, export not timed).

Figures: RFM for every customer, the Pareto table, a 3-step funnel with windows (added → page
view within 7 days → order within 30 days), a 12-month cohort table (first add → ordered in
month k), and the BG/NBD + Gamma-Gamma fit (`run_fit`: read orders, summarise, fit, store a value
per customer) against polars summarising the CSV and the same fit functions. Each pair must agree
on its headline numbers (customers scored and their score counts, Pareto shares, funnel step
counts, cohort cells, fitted parameters); a disagreement fails the bench.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from bench import analytics_baseline as baseline
from bench import segments_data
from bench.harness import Reporter, bench_database, new_workspace, peak_memory, result_row, size_rows, timed
from bench.segments_data import NOW
from siyu.analytics.clv import models
from siyu.analytics.clv.pareto import pareto_table
from siyu.analytics.clv.service import run_fit
from siyu.analytics.clv.summary import summarize
from siyu.analytics.funnels.service import run_funnel
from siyu.analytics.periods import Period
from siyu.analytics.retention.service import cohort_table
from siyu.analytics.rfm.service import compute_rfm
from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.workspaces.scope import bind_workspace

T = TypeVar("T")
TODAY = date(2026, 11, 23)
"""NOW (02:00 UTC) is 10:00 on this day in Asia/Shanghai, the bench brand's zone."""
WINDOW_DAYS = 365
FUNNEL = {
    "steps": [
        {"kind": "added"},
        {"kind": "event", "type": "page.view", "within": {"days": 7}},
        {"kind": "order", "nth": None, "within": {"days": 30}},
    ],
    "order": "ordered",
}
FUNNEL_PERIOD = Period(TODAY - timedelta(days=89), TODAY)
COHORTS = {"cohort": "added", "grain": "month", "measure": "return", "return_event": "order", "criterion": "on"}
COHORT_PERIOD = Period(date(2025, 12, 1), TODAY)
PARAM_TOLERANCE = 1e-3
"""Relative difference allowed between the two fits' parameters (same data, same optimiser)."""


def _timed(call: Callable[[], T]) -> tuple[float, T]:
    with timed() as took:
        value = call()
    return took.seconds, value


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=PARAM_TOLERANCE, abs_tol=1e-9)


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Load the brand, export its CSVs, time each computation both ways, compare, return the result."""
    size_rows(size)
    folder = Path(tempfile.mkdtemp(prefix="siyu-bench-analytics-"))
    results: list[dict[str, Any]] = []
    mismatches: dict[str, Any] = {}
    try:
        with bench_database(database_url) as database, peak_memory() as memory:
            engine = database.engine
            workspace_id = new_workspace(engine, "bench-analytics")
            brand = segments_data.setup(engine, workspace_id, size)
            reporter.step(f"loading {brand.customers:,} customers and their rows into {database.label}")
            segments_data.load(engine, brand, reporter.step)
            reporter.step("exporting CSV for the polars baseline")
            paths = baseline.export_csv(engine, workspace_id, folder)
            actor, clock = Actor.system(workspace_id), FrozenClock(NOW)
            n = brand.customers
            with Session(engine) as session:
                bind_workspace(session, workspace_id)

                reporter.step("RFM")
                seconds, rfm = _timed(lambda: compute_rfm(session, actor=actor, clock=clock, window_days=WINDOW_DAYS))
                base_seconds, rfm_base = _timed(lambda: baseline.rfm(paths, today=TODAY, window_days=WINDOW_DAYS))
                results.append(result_row("rfm", seconds, base_seconds, n))
                product_counts: dict[str, int] = {}
                for r, f, m in zip(rfm.r.tolist(), rfm.f.tolist(), rfm.m.tolist(), strict=True):
                    key = f"{r},{f},{m}"
                    product_counts[key] = product_counts.get(key, 0) + 1
                if len(rfm.customer_ids) != rfm_base.customers or product_counts != rfm_base.score_counts:
                    mismatches["rfm"] = {"product": len(rfm.customer_ids), "polars": rfm_base.customers}

                reporter.step("Pareto")
                seconds, pareto = _timed(
                    lambda: pareto_table(session, actor=actor, clock=clock, window_days=WINDOW_DAYS)
                )
                base_seconds, shares = _timed(lambda: baseline.pareto(paths, today=TODAY, window_days=WINDOW_DAYS))
                results.append(result_row("pareto", seconds, base_seconds, n))
                product_shares = {row.top_pct: row.share for row in pareto.rows}
                if any(not _close(product_shares.get(p) or 0.0, s) for p, s in shares.items()):
                    mismatches["pareto"] = {"product": product_shares, "polars": shares}

                reporter.step("3-step funnel")
                seconds, funnel = _timed(
                    lambda: run_funnel(session, actor=actor, definition=FUNNEL, period=FUNNEL_PERIOD, clock=clock)
                )
                lo, hi = FUNNEL_PERIOD.utc_bounds(segments_data_zone())
                base_seconds, steps = _timed(
                    lambda: baseline.funnel(paths, start=lo, end=hi, view_days=7, order_days=30)
                )
                results.append(result_row("funnel_3_steps", seconds, base_seconds, n))
                product_steps = [s.customers for s in funnel.total.steps]
                if product_steps != steps:
                    mismatches["funnel"] = {"product": product_steps, "polars": steps}

                reporter.step("12-month cohort table")
                seconds, cohorts = _timed(
                    lambda: cohort_table(session, actor=actor, config=COHORTS, period=COHORT_PERIOD, clock=clock)
                )
                base_seconds, cells = _timed(
                    lambda: baseline.cohorts(paths, first_month=COHORT_PERIOD.start, months=12)
                )
                results.append(result_row("cohorts_12_months", seconds, base_seconds, n))
                product_cells: dict[tuple[date, int], int] = {}
                for row in cohorts.cohorts:
                    if row.size:
                        product_cells[(row.start, -1)] = row.size
                    for k, count in enumerate(row.counts):
                        if count:
                            product_cells[(row.start, k)] = count
                polars_cells = {key: value for key, value in cells.items() if value}
                if product_cells != polars_cells:
                    mismatches["cohorts"] = {"product_cells": len(product_cells), "polars_cells": len(polars_cells)}
                session.rollback()

                reporter.step("BG/NBD + Gamma-Gamma fit")
                seconds, fit = _timed(lambda: run_fit(session, actor=actor, clock=clock, calibration_end=TODAY))
                session.commit()

                def polars_fit() -> tuple[models.BgNbd, models.GammaGamma]:
                    ids, days, amounts = baseline.purchase_days(paths)
                    summary = summarize(ids, days, amounts, calibration_end=TODAY, time_unit="week")
                    bg = models.fit_bgnbd(summary.frequency, summary.recency, summary.T)
                    gg = models.fit_gamma_gamma(summary.frequency, summary.monetary)
                    return bg, gg

                base_seconds, (bg, gg) = _timed(polars_fit)
                results.append(result_row("clv_fit", seconds, base_seconds, fit.customers))
                params = fit.params
                if not all(_close(float(params[k]), getattr(bg, k)) for k in ("r", "alpha", "a", "b")):
                    mismatches["clv_fit"] = {"product": params, "polars": [bg.r, bg.alpha, bg.a, bg.b]}
                # Gamma-Gamma's likelihood can be nearly flat along q and v (spend that is not gamma
                # distributed, as here): compare the maximum reached, not the point found on the ridge.
                if not _close(float(params["gg_ll"]), gg.log_likelihood):
                    mismatches["clv_fit_gg"] = {"product": params["gg_ll"], "polars": gg.log_likelihood}
            for figure in results:
                reporter.step(
                    f"{figure['name']}: {figure['seconds']:.2f} s vs {figure['baseline_seconds']:.2f} s polars "
                    f"({(figure['ratio'] or 0):.2f}×)"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if mismatches:
        raise RuntimeError(f"analytics figures differ from the polars baseline: {mismatches}")
    reporter.step("done")
    return {
        "bench": "analytics",
        "size": size,
        "database": database.kind,
        "results": results,
        "customers": brand.customers,
        "orders": brand.rows["orders"],
        "events": brand.rows["customer_events"],
        "relationships": brand.rows["relationships"],
        "rfm_scored": len(rfm.customer_ids),
        "pareto_top20_share": round(shares[20], 4),
        "funnel_steps": steps,
        "clv_customers": fit.customers,
        "clv_params": {k: fit.params.get(k) for k in ("r", "alpha", "a", "b", "p", "q", "v")},
        "mismatches": len(mismatches),
        "peak_memory_mb": memory.peak_mb,
    }


def segments_data_zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(baseline.ZONE)
