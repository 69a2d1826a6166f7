"""Customer-service hooks: the few facts and rules that need code rather than data.

``sample_profile`` draws a customer, an order and a product; ``complete_facts`` derives
facts that depend on the subflow's own facts (and picks the question of a product or store
FAQ task); ``DECISIONS`` are the policy book's branch rules (membership levels, return
windows, shipping status, waiting times, the system's verdicts), as the policy states them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlhf_envs.simulation.sampling import digits as _digits
from rlhf_envs.simulation.sampling import phone as _phone
from rlhf_envs.simulation.sampling import pick as _pick


def sample_profile(data: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A customer with an account, one order and the product in it."""
    first, last = _pick(rng, data["first_names"]), _pick(rng, data["last_names"])
    brand = _pick(rng, data["brands"])
    kind = _pick(rng, sorted(data["products"]))
    lo, hi = data["products"][kind]
    city, state, zip_prefix = _pick(rng, data["cities"])
    number = int(rng.integers(100, 9900))
    street = f"{number} {_pick(rng, data['streets'])}"
    zip_code = f"{zip_prefix}{_digits(rng, 3)}"
    new_number, new_zip = number, zip_code
    while (
        new_number == number or new_zip == zip_code
    ):  # a move shares no number with the old address
        new_number, new_zip = int(rng.integers(100, 9900)), f"{zip_prefix}{_digits(rng, 3)}"
    username = f"{first[0].lower()}{last.lower()}{int(rng.integers(1, 999))}"
    today = dt.date.fromisoformat(data["today"])
    days = int(rng.integers(data["days_since_purchase"][0], data["days_since_purchase"][1] + 1))
    return {
        "full_name": f"{first} {last}",
        "first_name": first,
        "account_id": _digits(rng, 10),
        "username": username,
        # Not derived from the username, so that giving one does not give away the other.
        "email": f"{first.lower()}.{last.lower()}{int(rng.integers(10, 100))}"
        f"@{_pick(rng, data['email_domains'])}",
        "phone": _phone(rng),
        "pin": _digits(rng, 4),
        "security_answer": _pick(rng, data["security_answers"]),
        "street_address": street,
        "full_address": f"{street}, {city}, {state} {zip_code}",
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
        "new_address": f"{new_number} {_pick(rng, data['streets'])}, {city}, {state} {new_zip}",
        "new_phone": _phone(rng),
        "new_password": f"tmp-{_digits(rng, 6)}",
        "promo_code": f"save-{_digits(rng, 4)}",
        "due_date": (today + dt.timedelta(days=int(rng.integers(1, 28)))).isoformat(),
        "delivery_date": (today + dt.timedelta(days=int(rng.integers(1, 8)))).isoformat(),
    }


def complete_facts(
    facts: dict[str, Any], data: Mapping[str, Any], rng: np.random.Generator
) -> None:
    """Facts that follow from others (in place)."""
    facts["zip_code"] = facts["full_address"].rsplit(" ", 1)[1]
    window = data["return_windows"].get(facts["membership_level"])
    facts["return_window"] = (
        "unlimited" if window is None else ("6 months" if window == 182 else f"{window} days")
    )
    facts["upgrade_fee"] = "$0" if facts["membership_level"] == "gold" else "$20"
    # The expected delivery date follows the shipping status.
    lo, hi = data["delivery_days"][facts["shipping_status"]]
    today = dt.date.fromisoformat(data["today"])
    facts["delivery_date"] = (today + dt.timedelta(days=int(rng.integers(lo, hi + 1)))).isoformat()
    # Product and store questions: the question and its answer go together.
    faq = facts.get("faq")
    if faq is not None:
        if faq == "item":
            topic = facts["product"].rsplit(" ", 1)[1]  # jeans, shirt, boots, jacket
        else:
            topic = _pick(rng, sorted(data["store_faq"]))
        entries = data["item_faq" if faq == "item" else "store_faq"][topic]
        entry = entries[int(rng.integers(len(entries)))]
        facts["faq_topic"] = topic
        facts["question"] = entry["question"].format(product=facts["product"])
        facts["answer"] = entry["answer"]
        facts["answer_key"] = entry["key"]


def return_allowed(f: Mapping[str, Any]) -> bool:
    """Gold: always. Others: within their window, or with a receipt."""
    if f["membership_level"] == "gold" or f["has_receipt"] == "yes":
        return True
    return (
        f["days_since_purchase"]
        <= {"guest": 30, "bronze": 90, "silver": 182}[f["membership_level"]]
    )


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


def _days(value: Any) -> int:
    """``3``, ``"3"`` or ``"3 days"`` -> 3."""
    return int(str(value).split()[0])


def waited_over_week(f: Mapping[str, Any]) -> bool:
    """A package missing for more than 7 days is reshipped; before that, the customer waits."""
    return _days(f["days_waited"]) > 7


def shipping_fee_waivable(f: Mapping[str, Any]) -> bool:
    """Shipping is waived before the order is out for delivery; after that, $8 is refunded."""
    return f["shipping_status"] in ("order received", "in transit")


def extension_allowed(f: Mapping[str, Any]) -> bool:
    """Gold members always get a payment extension; silver members only when 1 day late."""
    level = f["membership_level"]
    return level == "gold" or (level == "silver" and _days(f["days_late"]) <= 1)


def dispute_refund_by_membership(f: Mapping[str, Any]) -> bool:
    """Gold members always get a disputed charge refunded; silver members when it is under $10."""
    level = f["membership_level"]
    return level == "gold" or (level == "silver" and float(str(f["overcharge"]).lstrip("$")) < 10)


def billing_error_confirmed(f: Mapping[str, Any]) -> bool:
    """Otherwise the billing records decide: refund only an overcharge they confirm."""
    return bool(f["oracle"])


def promo_error_ours(f: Mapping[str, Any]) -> bool:
    """A promo code that should have worked is replaced for anyone."""
    return bool(f["oracle"])


def promo_member(f: Mapping[str, Any]) -> bool:
    """Bronze, silver and gold members get a new promo code even when theirs has lapsed;
    guests do not."""
    return f["membership_level"] != "guest"


def return_credit_overdue(f: Mapping[str, Any]) -> bool:
    """A credit still missing more than 7 days after the item was sent back is added at once."""
    return _days(f["days_since_return"]) > 7


def gold_member(f: Mapping[str, Any]) -> bool:
    """Within 7 days, only gold members get a missing return credit added early."""
    return f["membership_level"] == "gold"


DECISIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    fn.__name__: fn
    for fn in (
        return_allowed,
        needs_mailing_address,
        fee_company_error,
        trusted_member,
        not_yet_shipped,
        order_not_shipped,
        member_not_guest,
        waited_over_week,
        shipping_fee_waivable,
        extension_allowed,
        dispute_refund_by_membership,
        billing_error_confirmed,
        promo_error_ours,
        promo_member,
        return_credit_overdue,
        gold_member,
    )
}
