"""Customer-service hooks: the few facts and rules that need code rather than data.

``sample_profile`` draws a customer, an order and a product; ``complete_facts`` derives
facts that depend on the subflow's own facts; ``DECISIONS`` are the policy book's branch
rules (membership levels, return windows, shipping status), as the policy states them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Mapping

import numpy as np


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _digits(rng: np.random.Generator, n: int) -> str:
    first = str(int(rng.integers(1, 10)))
    return first + "".join(str(int(d)) for d in rng.integers(0, 10, size=n - 1))


def _phone(rng: np.random.Generator) -> str:
    return f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}"


def sample_profile(data: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A customer with an account, one order and the product in it."""
    first, last = _pick(rng, data["first_names"]), _pick(rng, data["last_names"])
    brand = _pick(rng, data["brands"])
    kind = _pick(rng, sorted(data["products"]))
    lo, hi = data["products"][kind]
    city, state, zip_prefix = _pick(rng, data["cities"])
    number = int(rng.integers(100, 9900))
    street = f"{number} {_pick(rng, data['streets'])}"
    username = f"{first[0].lower()}{last.lower()}{int(rng.integers(1, 999))}"
    today = dt.date.fromisoformat(data["today"])
    days = int(rng.integers(data["days_since_purchase"][0], data["days_since_purchase"][1] + 1))
    return {
        "full_name": f"{first} {last}",
        "first_name": first,
        "account_id": _digits(rng, 10),
        "username": username,
        "email": f"{username}@{_pick(rng, data['email_domains'])}",
        "phone": _phone(rng),
        "pin": _digits(rng, 4),
        "security_answer": _pick(rng, data["security_answers"]),
        "street_address": street,
        "full_address": f"{street}, {city}, {state} {zip_prefix}{_digits(rng, 3)}",
        "zip_code": None,  # filled below from the address, so the two agree
        "membership_level": _pick(rng, data["membership_levels"]),
        "order_id": _digits(rng, 10),
        "product": f"{brand} {kind}",
        "amount": f"${int(rng.integers(lo, hi + 1))}",
        "payment_method": _pick(rng, data["payment_methods"]),
        "days_since_purchase": days,
        "purchase_date": (today - dt.timedelta(days=days)).isoformat(),
        "has_receipt": "yes" if rng.random() < 0.3 else "no",
        "shipping_status": _pick(rng, data["shipping_statuses"]),
        # Values some tasks change the account to, or tell the customer.
        "new_address": f"{int(rng.integers(100, 9900))} {_pick(rng, data['streets'])}, {city}, {state} {zip_prefix}{_digits(rng, 3)}",
        "new_phone": _phone(rng),
        "new_password": f"tmp-{_digits(rng, 6)}",
        "promo_code": f"save-{_digits(rng, 4)}",
        "due_date": (today + dt.timedelta(days=int(rng.integers(1, 28)))).isoformat(),
        "delivery_date": (today + dt.timedelta(days=int(rng.integers(1, 8)))).isoformat(),
    }


def complete_facts(facts: dict[str, Any], data: Mapping[str, Any], rng: np.random.Generator) -> None:
    """Facts that follow from others (in place)."""
    facts["zip_code"] = facts["full_address"].rsplit(" ", 1)[1]
    window = data["return_windows"].get(facts["membership_level"])
    facts["return_window"] = "unlimited" if window is None else (
        "6 months" if window == 182 else f"{window} days"
    )
    facts["upgrade_fee"] = "$0" if facts["membership_level"] == "gold" else "$20"


def return_allowed(f: Mapping[str, Any]) -> bool:
    """Gold: always. Others: within their window, or with a receipt."""
    if f["membership_level"] == "gold" or f["has_receipt"] == "yes":
        return True
    return f["days_since_purchase"] <= {"guest": 30, "bronze": 90, "silver": 182}[f["membership_level"]]


def needs_mailing_address(f: Mapping[str, Any]) -> bool:
    """Gift cards and paper checks are posted."""
    return f["refund_method"] in ("gift card", "paper check")


def fee_company_error(f: Mapping[str, Any]) -> bool:
    """What the store's systems say about a disputed fee."""
    return bool(f["oracle"])


def trusted_member(f: Mapping[str, Any]) -> bool:
    """Gold and silver members always have disputed fees removed."""
    return f["membership_level"] in ("gold", "silver")


def not_yet_shipped(f: Mapping[str, Any]) -> bool:
    """Before the courier has it, an order's payment can still change."""
    return f["shipping_status"] in ("order received", "in transit")


def order_not_shipped(f: Mapping[str, Any]) -> bool:
    """Only an order still in the warehouse can change delivery or contents."""
    return f["shipping_status"] == "order received"


def member_not_guest(f: Mapping[str, Any]) -> bool:
    """Bronze, silver and gold members get shipped duplicates refunded at once."""
    return f["membership_level"] != "guest"


DECISIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    fn.__name__: fn
    for fn in (
        return_allowed, needs_mailing_address, fee_company_error, trusted_member,
        not_yet_shipped, order_not_shipped, member_not_guest,
    )
}
