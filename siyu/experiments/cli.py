"""`siyu ab …`: the experiment statistics from the command line (no database needed)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from siyu.kit.errors import DomainError

app = typer.Typer(help="A/B test statistics.", no_args_is_help=True)
_ARM = re.compile(r"^(?P<name>[^=]+)=(?P<users>\d+):(?P<conversions>\d+)$")
LANGS = ("en", "zh")


def _fail(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code=2)


def parse_arm(text: str) -> tuple[str, int, int]:
    """`NAME=USERS:CONVERSIONS` → (name, users, conversions); ValueError naming the arm otherwise."""
    match = _ARM.match(text.strip())
    if not match or not match["name"].strip():
        raise ValueError(f"bad --arm {text!r}: expected NAME=USERS:CONVERSIONS, e.g. control=1000:120")
    return match["name"].strip(), int(match["users"]), int(match["conversions"])


def _pct(value: float, digits: int = 2) -> str:
    return f"{value * 100:.{digits}f}%"


def _signed_pct(value: float, digits: int = 2) -> str:
    return f"{value * 100:+.{digits}f}%"


def _p(value: float) -> str:
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _lang_key(lang: str) -> str:
    if lang not in LANGS:
        _fail(f"--lang must be one of {', '.join(LANGS)}")
    return "zh_CN" if lang == "zh" else "en"


def _out() -> Console:
    # A table several columns wide: never squeeze it below 120 columns when stdout is not a terminal.
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 120))


def _print_analysis(result: dict[str, Any], lang: str) -> None:
    out = _out()
    level = f"{result['confidence_level'] * 100:g}%"
    arms = Table(title="Arms", title_justify="left")
    for column in ("arm", "users", "conversions", "rate", f"{level} CI (Wilson)"):
        arms.add_column(column, justify="left" if column == "arm" else "right")
    for arm in result["arms"]:
        name = arm["name"]
        if arm["is_control"] and name.lower() != "control":
            name += " (control)"
        ci = f"[{_pct(arm['rate_ci_low'])}, {_pct(arm['rate_ci_high'])}]"
        arms.add_row(escape(name), f"{arm['users']:,}", f"{arm['conversions']:,}", _pct(arm["rate"]), ci)
    out.print(arms)
    adjusted = result["correction"] == "bonferroni"
    table = Table(title="Compared with control", title_justify="left")
    columns = ["arm", f"difference ({level} CI)", "p", f"lift ({level} CI)", "p (lift)", "P(beats control)", "loss"]
    for column in columns:
        table.add_column(column, justify="left" if column == "arm" else "right")
    for c in result["comparisons"]:
        a, r = c["absolute"], c["relative"]
        p_key = "p_value_adjusted" if adjusted else "p_value"
        difference = f"{_signed_pct(a['estimate'])} [{_signed_pct(a['ci_low'])}, {_signed_pct(a['ci_high'])}]"
        lift = (
            "—"
            if r is None
            else f"{_signed_pct(r['estimate'], 1)} [{_signed_pct(r['ci_low'], 1)}, {_signed_pct(r['ci_high'], 1)}]"
        )
        table.add_row(
            escape(c["arm"]),
            difference,
            _p(a[p_key]),
            lift,
            "—" if r is None else _p(r[p_key]),
            _pct(c["chance_to_beat_control"], 1),
            _pct(c["expected_loss"], 3),
        )
    out.print(table)
    srm = result["sample_ratio"]
    state = "MISMATCH" if srm["flagged"] else "ok"
    out.print(f"Sample ratio: chi² = {srm['chi_square']:.3f}, p = {srm['p_value']:.4f} ({state})", highlight=False)
    if result["plan"]:
        plan = result["plan"]
        out.print(f"Planned users per arm: {plan['planned_users_per_arm']:,} ({plan['progress'] * 100:.0f}% reached)")
    if adjusted:
        out.print("p-values are Bonferroni-adjusted for several comparisons with control.")
    for note in result["notes"][lang]:
        out.print(escape(note), highlight=False)
    for c in result["comparisons"]:
        out.print(escape(c["explanation"][lang]), highlight=False)


@app.command()
def analyze(
    arm: Annotated[
        list[str], typer.Option("--arm", help="NAME=USERS:CONVERSIONS; the first arm is the control. Repeat per arm.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with every figure.")] = False,
    planned: Annotated[int | None, typer.Option("--planned", help="Planned users per arm.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level (CI level is 1 − alpha).")] = 0.05,
    weight: Annotated[
        list[float] | None, typer.Option("--weight", help="Planned share of each arm, in order (default equal).")
    ] = None,
    metric: Annotated[str | None, typer.Option(help="add_rate, first_order_rate or click_rate (wording).")] = None,
    lang: Annotated[str, typer.Option(help="Language of the explanation: en or zh.")] = "en",
) -> None:
    """Compare each arm with the control: rates, differences with CIs, p-values, Bayesian chance to
    beat control, expected loss and the sample-ratio check.

    Example: siyu ab analyze --arm control=1000:120 --arm B=1000:150
    """
    from siyu.experiments import stats  # scipy loads only when the statistics are asked for

    key = _lang_key(lang)
    arms = []
    for text in arm:
        try:
            arms.append(stats.Arm(*parse_arm(text)))
        except ValueError as exc:
            _fail(str(exc))
    try:
        result = stats.analyze(arms, alpha=alpha, planned_users_per_arm=planned, weights=weight or None, metric=metric)
    except DomainError as exc:
        _fail(exc.message)
        return
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_analysis(result.to_dict(), key)


@app.command("sample-size")
def sample_size(
    baseline: Annotated[float, typer.Option(help="Control's conversion rate, e.g. 0.12.")],
    mde: Annotated[float, typer.Option(help="Minimum detectable effect, relative by default (0.2 = +20%).")],
    absolute: Annotated[bool, typer.Option("--absolute", help="Read --mde as an absolute difference.")] = False,
    power: Annotated[float, typer.Option(help="Chance to detect the effect if it is real.")] = 0.8,
    alpha: Annotated[float, typer.Option(help="Significance level, two-sided.")] = 0.05,
    arms: Annotated[int, typer.Option(help="Arms including control (alpha is split over the comparisons).")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Users per arm for a two-sided two-proportion test.

    Example: siyu ab sample-size --baseline 0.12 --mde 0.2
    """
    from siyu.experiments import stats

    try:
        result = stats.sample_size(
            baseline_rate=baseline,
            minimum_detectable_effect=mde,
            relative=not absolute,
            power=power,
            alpha=alpha,
            arms=arms,
        )
    except DomainError as exc:
        _fail(exc.message)
        return
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    out = _out()
    out.print(
        f"Baseline {_pct(result.baseline_rate)} → {_pct(result.target_rate)} "
        f"(absolute {_signed_pct(result.absolute_effect)}, relative {_signed_pct(result.relative_effect, 1)}), "
        f"power {result.power:g}, alpha {result.alpha:g} two-sided",
        highlight=False,
    )
    out.print(f"Users per arm: {result.users_per_arm:,}", highlight=False)
    out.print(f"Total users ({result.arms} arms): {result.total_users:,}", highlight=False)
