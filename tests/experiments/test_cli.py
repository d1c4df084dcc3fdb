"""`siyu ab analyze` and `siyu ab sample-size`: no database, readable tables or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from statsmodels.stats.proportion import proportions_ztest
from typer.testing import CliRunner

from siyu import db as db_module
from siyu.cli import app
from siyu.db import set_database


@pytest.fixture
def cli() -> Iterator[CliRunner]:
    set_database(None)
    yield CliRunner()
    # no database was opened: the statistics need none
    assert db_module._database is None


def test_analyze_prints_a_table_and_the_explanation(cli: CliRunner) -> None:
    result = cli.invoke(app, ["ab", "analyze", "--arm", "control=1000:120", "--arm", "B=1000:150", "--planned", "3122"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for figure in [
        "12.00%",
        "15.00%",
        "[10.13%, 14.16%]",
        "+3.00% [+0.01%, +5.99%]",
        "0.0496",
        "+25.0% [-2.9%, +52.9%]",
    ]:
        assert figure in out
    assert "97.5%" in out  # chance to beat control
    assert "Sample ratio: chi² = 0.000, p = 1.0000 (ok)" in out
    assert "Planned users per arm: 3,122 (32% reached)" in out
    assert "B's conversion rate is 25% higher, but there is not enough data yet to conclude (32% of the planned" in out
    chinese = cli.invoke(
        app,
        ["ab", "analyze", "--arm", "control=1000:120", "--arm", "B=1000:150", "--lang", "zh", "--metric", "add_rate"],
    )
    # without a plan, significant at p = 0.0496 (four decimals, so it never reads as a borderline 0.050)
    assert "B 的添加率高 25%，差异显著（p = 0.0496），B 胜过对照的概率为 97.5%" in chinese.stdout


def test_analyze_json_has_every_figure(cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["ab", "analyze", "--arm", "control=1000:120", "--arm", "B=1000:150", "--arm", "C=1000:100", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [a["name"] for a in data["arms"]] == ["control", "B", "C"]
    p_b = proportions_ztest([150, 120], [1000, 1000])[1]
    assert data["comparisons"][0]["absolute"]["p_value"] == pytest.approx(p_b, rel=1e-9)
    assert data["comparisons"][0]["absolute"]["p_value_adjusted"] == pytest.approx(2 * p_b, rel=1e-9)
    assert data["correction"] == "bonferroni" and data["plan"] is None
    assert data["notes"]["en"] == ["2 variants are each compared with control; p-values are Bonferroni-adjusted (× 2)."]


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        (["control=1000:120", "B=1000"], "bad --arm 'B=1000': expected NAME=USERS:CONVERSIONS"),
        (["control=1000:120", "B=abc:1"], "bad --arm 'B=abc:1'"),
        (["control=1000:120", "=10:1"], "bad --arm '=10:1'"),
        (["control=1000:120", "B=100:150"], "arm 'B': conversions (150) exceed users (100)"),
        (["control=1000:120"], "at least 2 arms"),
        (["control=0:0", "B=10:1"], "arm 'control': users must be at least 1"),
    ],
)
def test_bad_arms_exit_2_naming_the_arm(cli: CliRunner, arms: list[str], message: str) -> None:
    args = ["ab", "analyze"]
    for arm in arms:
        args += ["--arm", arm]
    result = cli.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_sample_size(cli: CliRunner) -> None:
    result = cli.invoke(app, ["ab", "sample-size", "--baseline", "0.12", "--mde", "0.2"])
    assert result.exit_code == 0, result.output
    assert "Users per arm: 3,122" in result.stdout and "Total users (2 arms): 6,244" in result.stdout
    as_json = cli.invoke(app, ["ab", "sample-size", "--baseline", "0.12", "--mde", "0.2", "--power", "0.9", "--json"])
    data = json.loads(as_json.stdout)
    assert (data["users_per_arm"], data["power"], data["alpha"]) == (4179, 0.9, 0.05)
    bad = cli.invoke(app, ["ab", "sample-size", "--baseline", "0.9", "--mde", "0.2"])
    assert bad.exit_code == 2 and "not below 1" in bad.output
