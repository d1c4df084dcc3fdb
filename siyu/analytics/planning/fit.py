"""Private-domain fit check (私域适配度): does a pool member earn back what keeping and winning them costs?

    contribution per member per year = orders per member per year × AOV × margin − operating cost × 12
    payback months                   = acquisition cost per member ÷ (contribution ÷ 12)

Verdict rules (in this order): inputs missing → say what to enter; contribution ≤ 0 → no; no
acquisition cost → yes on contribution alone, asking for the cost; payback ≤ 12 months → yes;
≤ 24 months → marginal; longer → no. When the repurchase rate is under 20 % the verdict names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.orm import Session

from siyu.analytics.planning.history import History, measure_history
from siyu.analytics.planning.kpi import MAX_FEN
from siyu.analytics.settings import current_settings
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput

LOW_REPURCHASE = 0.2
PAYBACK_GOOD_MONTHS = 12
PAYBACK_MAX_MONTHS = 24


class Verdict(StrEnum):
    YES = "yes"
    MARGINAL = "marginal"
    NO = "no"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class FitInputs:
    """What the operator entered (settings, or overridden on the page); None = not entered."""

    margin_bp: int | None = None
    operating_cost_fen_month: int | None = None
    acquisition_cost_fen: int | None = None


@dataclass
class FitCheck:
    history: History
    margin_bp: int | None
    operating_cost_fen_month: int | None
    acquisition_cost_fen: int | None
    acquisition_cost_measured: bool
    """True when the acquisition cost is the measured channel cost per add, not an entry."""
    orders_per_member_year: float | None
    aov_fen: float | None
    gross_profit_fen_year: float | None
    """orders/member/year × AOV × margin."""
    contribution_fen_year: float | None
    payback_months: float | None
    verdict: Verdict
    message: str
    missing: list[str] = field(default_factory=list)


def _yuan(fen: float) -> str:
    return f"¥{fen / 100:,.2f}"


def check_inputs(inputs: FitInputs) -> None:
    """Margin 0–100 %, costs 0..10^15 fen (`InvalidInput` naming the field)."""
    if inputs.margin_bp is not None and not 0 <= inputs.margin_bp <= 10_000:
        raise InvalidInput("margin must be between 0 and 100 %", details={"field": "margin_bp"})
    for name, value in (
        ("operating_cost_fen", inputs.operating_cost_fen_month),
        ("acquisition_cost_fen", inputs.acquisition_cost_fen),
    ):
        if value is not None and not 0 <= value <= MAX_FEN:
            raise InvalidInput(f"{name} must be between 0 and {MAX_FEN}", details={"field": name})


def fit_check(session: Session, *, actor: Actor, clock: Clock, inputs: FitInputs | None = None) -> FitCheck:
    """The fit check from the measured history, the settings, and any values entered on the page."""
    actor.require(Scope.ANALYTICS_READ)
    inputs = inputs or FitInputs()
    check_inputs(inputs)
    history = measure_history(session, actor=actor, clock=clock)
    settings = current_settings(session, actor.workspace_id, clock)
    margin = inputs.margin_bp if inputs.margin_bp is not None else settings.gross_margin_bp
    operating = (
        inputs.operating_cost_fen_month
        if inputs.operating_cost_fen_month is not None
        else settings.operating_cost_fen_per_member_month
    )
    acquisition = inputs.acquisition_cost_fen
    measured = False
    if acquisition is None and history.acquisition_cost_fen is not None:
        acquisition, measured = history.acquisition_cost_fen, True
    return evaluate(history, margin, operating, acquisition, measured)


def evaluate(
    history: History,
    margin_bp: int | None,
    operating_fen_month: int | None,
    acquisition_fen: int | None,
    acquisition_measured: bool = False,
) -> FitCheck:
    """Apply the formulas and the verdict rules (pure; see the module docstring)."""
    opy = history.orders_per_member_year.value
    aov = history.aov.value
    missing = []
    if margin_bp is None:
        missing.append("gross margin (毛利率)")
    if operating_fen_month is None:
        missing.append("operating cost per member per month (每位会员每月运营成本)")
    if opy is None or aov is None:
        missing.append("order history (a complete month with pool members and orders)")
    gross = opy * aov * margin_bp / 10_000 if opy is not None and aov is not None and margin_bp is not None else None
    contribution = gross - operating_fen_month * 12 if gross is not None and operating_fen_month is not None else None
    payback = None
    if contribution is not None and contribution > 0 and acquisition_fen is not None:
        payback = round(acquisition_fen / (contribution / 12), 1)
    repurchase = history.repurchase_rate.value
    low = f"；复购率 {repurchase * 100:.1f}% 太低" if repurchase is not None and repurchase < LOW_REPURCHASE else ""
    if contribution is None:
        verdict, message = Verdict.INCOMPLETE, "还不能判断：请填写 " + "、".join(missing)
    elif contribution <= 0:
        verdict = Verdict.NO
        message = (
            f"不能：每位会员一年贡献毛利 {_yuan(gross or 0)}，"
            f"运营成本 {_yuan((operating_fen_month or 0) * 12)} 已超过它{low}"
        )
    elif acquisition_fen is None:
        verdict = Verdict.YES
        message = f"每位会员一年贡献 {_yuan(contribution)}：私域能养活自己；请填写获客成本以算回收期"
    elif payback is not None and payback <= PAYBACK_GOOD_MONTHS:
        verdict = Verdict.YES
        message = (
            f"每位会员一年贡献毛利 {_yuan(contribution)}，获客成本 {_yuan(acquisition_fen)} "
            f"在 {payback:g} 个月收回：私域能养活自己"
        )
    elif payback is not None and payback <= PAYBACK_MAX_MONTHS:
        verdict = Verdict.MARGINAL
        message = (
            f"勉强：每位会员一年贡献 {_yuan(contribution)}，获客成本 {_yuan(acquisition_fen)} "
            f"要 {payback:g} 个月才收回{low}"
        )
    else:
        verdict = Verdict.NO
        message = (
            f"不能：每位会员一年贡献 {_yuan(contribution)}，获客成本 {_yuan(acquisition_fen)} "
            f"要 {payback:g} 个月才收回{low}"
        )
    return FitCheck(
        history=history,
        margin_bp=margin_bp,
        operating_cost_fen_month=operating_fen_month,
        acquisition_cost_fen=acquisition_fen,
        acquisition_cost_measured=acquisition_measured,
        orders_per_member_year=opy,
        aov_fen=aov,
        gross_profit_fen_year=gross,
        contribution_fen_year=contribution,
        payback_months=payback,
        verdict=verdict,
        message=message,
        missing=missing if contribution is None else [],
    )


def fit_json(check: FitCheck) -> dict[str, object]:
    """The fit check for the API (money in fen)."""
    return {
        "margin_bp": check.margin_bp,
        "operating_cost_fen_month": check.operating_cost_fen_month,
        "acquisition_cost_fen": check.acquisition_cost_fen,
        "acquisition_cost_measured": check.acquisition_cost_measured,
        "orders_per_member_year": check.orders_per_member_year,
        "aov_fen": check.aov_fen,
        "repurchase_rate": check.history.repurchase_rate.value,
        "gross_profit_fen_year": check.gross_profit_fen_year,
        "contribution_fen_year": check.contribution_fen_year,
        "payback_months": check.payback_months,
        "verdict": str(check.verdict),
        "message": check.message,
        "missing": check.missing,
    }
