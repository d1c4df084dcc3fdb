"""The verdict of an arm against control, in plain zh-CN and English ("B 的添加率高 25%，但数据还不足以下结论")."""

from __future__ import annotations

from siyu.experiments.stats import Plan, SampleRatio, Status

METRIC_NAMES = {
    "add_rate": ("添加率", "add rate"),
    "first_order_rate": ("首单率", "first-order rate"),
    "click_rate": ("点击率", "click rate"),
}


def _num(value: float) -> str:
    """25.0 → "25", 2.54 → "2.5", 0.123 → "0.12": no trailing zeros, two decimals below 1."""
    text = f"{value:.{2 if abs(value) < 1 else 1}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _chance(chance: float) -> str:
    """A probability as a percentage that never rounds to a certain 0 or 100."""
    percent = chance * 100
    if percent > 99.9:
        return ">99.9"
    if percent < 0.1:
        return "<0.1"
    return _num(percent)


def _fmt_p(p: float) -> str:
    """Four decimals below 0.1, so a p of 0.0496 never reads as a borderline "0.050"."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.4f}" if p < 0.1 else f"p = {p:.3f}"


def explain(
    *,
    arm: str,
    metric: str | None,
    absolute: float,
    relative: float | None,
    p_value: float,
    chance: float,
    status: Status,
    significant: bool,
    plan: Plan | None,
) -> dict[str, str]:
    """One plain sentence about an arm against control, in zh_CN and en."""
    zh_metric, en_metric = METRIC_NAMES.get(metric or "", ("转化率", "conversion rate"))
    if absolute == 0:
        zh, en = f"{arm} 的{zh_metric}与对照相同", f"{arm}'s {en_metric} is the same as control's"
    elif relative is None:  # control at 0: say it in percentage points
        points = _num(abs(absolute) * 100)
        zh = f"{arm} 的{zh_metric}高 {points} 个百分点"
        en = f"{arm}'s {en_metric} is {points} percentage points higher"
    else:
        size, up = _num(abs(relative) * 100), relative > 0
        zh = f"{arm} 的{zh_metric}{'高' if up else '低'} {size}%"
        en = f"{arm}'s {en_metric} is {size}% {'higher' if up else 'lower'}"
    p = _fmt_p(p_value)
    if status == Status.COLLECTING:
        assert plan is not None
        done = _num(plan.progress * 100)
        zh += f"，但数据还不足以下结论（已收集计划样本量的 {done}%"
        en += f", but there is not enough data yet to conclude ({done}% of the planned sample collected"
        if significant:
            zh += "；未到计划样本量时的显著结果并不可靠"
            en += "; a significant result before the planned size is not reliable"
        return {"zh_CN": zh + "）", "en": en + ")"}
    if status == Status.INCONCLUSIVE:
        if plan is not None:
            zh += f"，但数据还不足以下结论：已达到计划样本量，差异仍不显著（{p}）"
            en += (
                ", but there is not enough data to conclude: the planned sample is reached"
                f" and the difference is not significant ({p})"
            )
        else:
            zh += f"，但数据还不足以下结论（差异不显著，{p}）"
            en += f", but there is not enough data yet to conclude (not significant, {p})"
        return {"zh_CN": zh, "en": en}
    if status == Status.BETTER:
        chance_text = _chance(chance)
        return {
            "zh_CN": zh + f"，差异显著（{p}），{arm} 胜过对照的概率为 {chance_text}%",
            "en": en + f" and the difference is significant ({p}); {arm} beats control with {chance_text}% probability",
        }
    return {
        "zh_CN": zh + f"，差异显著（{p}）：{arm} 比对照差",
        "en": en + f" and the difference is significant ({p}): {arm} is worse than control",
    }


def analysis_notes(srm: SampleRatio, comparisons: int) -> dict[str, list[str]]:
    """Warnings that apply to the whole test: a sample-ratio mismatch, several comparisons."""
    notes: dict[str, list[str]] = {"zh_CN": [], "en": []}
    if srm.flagged:
        p = _fmt_p(srm.p_value)
        notes["zh_CN"].append(
            f"警告：样本比例不匹配（SRM，{p}），实际分流与计划权重不符，结果可能不可信，请先检查分流。"
        )
        notes["en"].append(
            f"Warning: sample ratio mismatch (SRM, {p}): the split of users does not match the planned weights, "
            "so the results may not be trustworthy; check the assignment first."
        )
    if comparisons > 1:
        k = comparisons
        notes["zh_CN"].append(f"共有 {k} 个方案分别与对照比较，p 值已按 Bonferroni 校正（乘以 {k}）。")
        notes["en"].append(f"{k} variants are each compared with control; p-values are Bonferroni-adjusted (× {k}).")
    return notes
