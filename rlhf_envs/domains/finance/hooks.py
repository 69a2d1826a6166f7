"""Financial-advice hooks: the few facts and rules that need code rather than data.

``sample_profile`` draws a client: identity, income, spending, savings, a debt, existing
investments, a risk tolerance and the firm's funds that would suit them either way;
``complete_facts`` derives what follows from the profile and the task (the amount to
invest, debt payoff times, emergency-fund targets, what a fund costs a year);
``DECISIONS`` are the policy book's branch rules, as the policy states them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlhf_envs.simulation.sampling import between, digits, phone, pick

# Thresholds the policy book states (policy.yaml's policy_values).
LONG_HORIZON_YEARS = 7
HIGH_INTEREST_PERCENT = 10.0
REFERRAL_THRESHOLD = 100_000
FEE_BENCHMARK_PERCENT = 0.50
EMERGENCY_MONTHS = 12  # an emergency fund is built up within 12 months


def _money(value: Any) -> float:
    """``"$52,000"`` -> 52000.0."""
    return float(str(value).replace("$", "").replace(",", ""))


def _dollars(amount: float) -> str:
    """52000 -> ``"$52,000"``."""
    return f"${round(amount):,}"


def _percent(value: Any) -> float:
    """``"0.25%"`` -> 0.25."""
    return float(str(value).rstrip("%"))


def _count(value: Any) -> int:
    """``"12 years"`` or ``"3 months"`` -> the number."""
    return int(str(value).split()[0])


def _round_up(amount: float, step: int = 10) -> int:
    return int(math.ceil(amount / step) * step)


def sample_profile(data: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A client of the firm, with their money and the funds a suitability assessment
    would point to."""
    first, last = pick(rng, data["first_names"]), pick(rng, data["last_names"])
    today = dt.date.fromisoformat(data["today"])
    years = between(rng, *data["ages"])
    born = today - dt.timedelta(days=years * 365 + between(rng, 10, 350))
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    income = between(rng, *data["income_thousands"]) * 1000
    expenses = round(income / 12 * between(rng, *data["spending_share_percent"]) / 100, -2)
    growth = pick(rng, data["growth_funds"])
    conservative = pick(rng, data["conservative_funds"])
    current = pick(rng, data["current_funds"])
    return {
        "first_name": first,
        "full_name": f"{first} {last}",
        "client_id": f"FA-{digits(rng, 6)}",
        "date_of_birth": born.isoformat(),
        "ssn_last4": digits(rng, 4),
        "account_number": digits(rng, 10),
        "email": f"{first.lower()}.{last.lower()}{between(rng, 10, 99)}"
        f"@{pick(rng, data['email_domains'])}",
        "phone": phone(rng),
        "age": age,
        "annual_income": _dollars(income),
        "monthly_expenses": _dollars(expenses),
        "savings": _dollars(between(rng, *data["savings_steps"]) * 500),
        "risk_tolerance": pick(rng, data["risk_tolerances"]),
        "debt_kind": pick(rng, data["profile_debts"]),
        "portfolio_value": _dollars(between(rng, *data["portfolio_steps"]) * 500),
        "current_fund": current["name"],
        "current_fee": current["fee"],
        "growth_fund": growth["name"],
        "growth_fee": growth["fee"],
        "conservative_fund": conservative["name"],
        "conservative_fee": conservative["fee"],
    }


def complete_facts(
    facts: dict[str, Any], data: Mapping[str, Any], rng: np.random.Generator
) -> None:
    """Facts that follow from the profile and the task's own facts (in place)."""
    # The client's debt (a task may have drawn its kind).
    spec = data["debts"][facts["debt_kind"]]
    rate = between(rng, *spec["rate"])
    balance = between(rng, spec["balance"][0] // 100, spec["balance"][1] // 100) * 100
    facts["debt_rate"] = f"{rate}%"
    facts["debt_balance"] = _dollars(balance)
    facts["debts"] = f"{facts['debt_balance']} on a {facts['debt_kind']} at {facts['debt_rate']}"
    # What the client's current fund costs a year.
    facts["fee_cost"] = _dollars(
        _money(facts["portfolio_value"]) * _percent(facts["current_fee"]) / 100
    )

    task = facts.get("task")
    facts.setdefault("horizon", None)
    facts["goal_phrase"] = facts["invest_amount"] = None
    if task == "house_deposit":
        months = _count(facts["horizon"]) * 12
        monthly = max(
            100, _round_up((_money(facts["goal_amount"]) - _money(facts["deposit_saved"])) / months)
        )
        facts["invest_amount"] = f"{_dollars(monthly)} a month"
        facts["goal_phrase"] = f"your {facts['goal_amount']} deposit"
    elif task == "retirement":
        facts["horizon"] = f"{int(facts['retirement_age']) - int(facts['age'])} years"
        facts["invest_amount"] = f"{facts['monthly_contribution']} a month"
        facts["goal_phrase"] = "your retirement"
    elif task == "windfall":
        facts["invest_amount"] = facts["windfall_amount"]
        facts["goal_phrase"] = data["windfall_phrases"][facts["windfall_source"]]
    elif task == "debt_or_invest":
        facts["invest_amount"] = f"{facts['spare_monthly']} a month"
        facts["goal_phrase"] = "your spare cash"
        # Months to clear the debt paying spare_monthly (monthly compounding).
        r = rate / 100 / 12
        payment = _money(facts["spare_monthly"])
        months = math.ceil(-math.log(1 - r * balance / payment) / math.log(1 + r))
        facts["payoff_months"] = f"{months} months"
    elif task == "portfolio_review":
        facts["invest_amount"] = facts["portfolio_value"]
        facts["goal_phrase"] = "your portfolio"
    elif task == "emergency_fund":
        months = 3 if facts["income_type"] == "a steady salary" else 6
        target = _money(facts["monthly_expenses"]) * months
        savings = round(target * pick(rng, data["emergency_ratios"]), -2)
        gap = max(0.0, target - savings)
        facts["savings"] = _dollars(savings)
        facts["ef_months"] = f"{months} months"
        facts["ef_target"] = _dollars(target)
        facts["ef_gap"] = _dollars(gap)
        facts["ef_monthly"] = _dollars(max(50, _round_up(gap / EMERGENCY_MONTHS)))


def suits_higher_risk(f: Mapping[str, Any]) -> bool:
    """Suitability: a diversified growth portfolio suits a client only with a time
    horizon of 7 years or more and a medium or high risk tolerance; everyone else gets a
    conservative product, and higher-risk products are unsuitable for them. Without a
    horizon (no assessment), nothing higher-risk is suitable."""
    horizon = f.get("horizon")
    if not horizon:
        return False
    return _count(horizon) >= LONG_HORIZON_YEARS and f["risk_tolerance"] in ("medium", "high")


def has_high_interest_debt(f: Mapping[str, Any]) -> bool:
    """Debt charging over 10% a year is paid off before any money is invested."""
    return _percent(f["debt_rate"]) > HIGH_INTEREST_PERCENT


def needs_licensed_professional(f: Mapping[str, Any]) -> bool:
    """A windfall over $100,000 and any transfer of a plan from a previous employer go
    to a certified financial planner instead of a recommendation."""
    windfall = f.get("windfall_amount")
    return (windfall is not None and _money(windfall) > REFERRAL_THRESHOLD) or f.get(
        "pension_transfer"
    ) == "yes"


def emergency_fund_complete(f: Mapping[str, Any]) -> bool:
    """Cash savings cover the target: 3 months of expenses on a steady salary, 6 months
    on variable income."""
    return _money(f["savings"]) >= _money(f["ef_target"])


def fee_above_benchmark(f: Mapping[str, Any]) -> bool:
    """A fund charging more than the firm's 0.50% a year benchmark earns a free
    portfolio review."""
    return _percent(f["current_fee"]) > FEE_BENCHMARK_PERCENT


DECISIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    fn.__name__: fn
    for fn in (
        suits_higher_risk,
        has_high_interest_debt,
        needs_licensed_professional,
        emergency_fund_complete,
        fee_above_benchmark,
    )
}
