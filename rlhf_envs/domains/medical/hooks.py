"""Medical-triage hooks: the patient, the facts of the complaint and the protocol's rules.

``sample_profile`` draws a patient (name, sex, date of birth, member ID, history,
regular medicines and allergies); ``complete_facts`` fills in what follows from the
complaint the subflow names: which red-flag screen the patient answers, how a nurse names
the red flag, the warning signs and self-care advice that go with the complaint, and an
over-the-counter medicine that suits the patient's allergies and medicines;
``DECISIONS`` are the triage protocol's branch rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlhf_envs.simulation.sampling import between, digits, phone, pick, shift_date


def sample_profile(data: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """An adult patient with a record: identity, history, medicines and allergies."""
    sex = pick(rng, sorted(data["first_names"]))
    first, last = pick(rng, data["first_names"][sex]), pick(rng, data["last_names"])
    today = dt.date.fromisoformat(data["today"])
    years = between(rng, *data["age_range"])
    born = dt.date.fromisoformat(
        shift_date(data["today"], -(years * 365 + years // 4 + between(rng, 1, 360)))
    )
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    history = pick(rng, data["histories"])
    medications = history["medications"]
    # An allergy that leaves no safe over-the-counter choice with the patient's medicines
    # for some complaint is drawn again (the triage line always has something to offer).
    allergy = pick(rng, data["allergies"])
    while not all(
        _safe_options(c, allergy, medications, data)
        for c in data["complaints"].values()
        if c["otc"]
    ):
        allergy = pick(rng, data["allergies"])
    answers = data["answers"]
    return {
        "full_name": f"{first} {last}",
        "first_name": first,
        "sex": sex,
        "date_of_birth": born.isoformat(),
        "age": age,
        "member_id": f"MBR-{digits(rng, 7)}",
        "phone": phone(rng),
        "conditions": history["conditions"],
        "medications": medications,
        "allergies": allergy,
        "allergies_answer": pick(rng, answers["allergies_none"])
        if allergy == "none"
        else pick(rng, answers["allergies"]).format(item=allergy),
        "medications_answer": pick(rng, answers["medications_none"])
        if medications == "none"
        else pick(rng, answers["medications"]).format(item=medications),
        "last_visit": shift_date(data["today"], -between(rng, *data["last_visit_days"])),
    }


def complete_facts(
    facts: dict[str, Any], data: Mapping[str, Any], rng: np.random.Generator
) -> None:
    """Facts that follow from the complaint and the patient (in place)."""
    complaint = data["complaints"][facts["complaint"]]
    # The patient answers their complaint's red-flag screen from the red_flag fact.
    facts[complaint["screen"]] = facts["red_flag"]
    reasons = complaint["red_flags"]
    facts["red_flag_reason"] = reasons.get(facts["red_flag"], next(iter(reasons.values())))
    crisis = bool(complaint.get("crisis"))
    facts["emergency_numbers"] = "911 and 988" if crisis else "911"
    facts["crisis_note"] = data["crisis_note"] if crisis else ""
    facts["emergency_contact"] = data["emergency_contact"]["crisis" if crisis else "default"]
    facts["warning_signs"] = complaint["warning_signs"]
    facts["care_tips"] = complaint["care_tips"]
    facts["diagnosis_guess"] = pick(rng, complaint["diagnoses"])
    # The first safe option in the complaint's order of preference.
    options = _safe_options(complaint, facts["allergies"], facts["medications"], data)
    facts["otc_medicine"] = options[0]["medicine"] if options else None
    facts["otc_use"] = options[0]["use"] if options else None
    # What this patient must not be offered: medicines that clash with their allergy or
    # their regular medicine, and the allergen itself.
    unsafe = [
        name
        for name, spec in data["medicines"].items()
        if facts["allergies"] in spec["allergies"] or facts["medications"] in spec["medications"]
    ]
    facts["unsafe_medicine"] = unsafe[0] if unsafe else None
    names = [n for name in unsafe for n in data["medicines"][name]["names"]]
    if facts["allergies"] != "none":
        names.append(facts["allergies"])
    facts["unsafe_medicines"] = names


def _safe_options(
    complaint: Mapping[str, Any], allergy: str, medications: str, data: Mapping[str, Any]
) -> list:
    """The complaint's over-the-counter options that the patient may take: none they are
    allergic to, none that clashes with their regular medicine."""
    medicines = data["medicines"]
    return [
        o
        for o in complaint["otc"]
        if allergy not in medicines[o["medicine"]]["allergies"]
        and medications not in medicines[o["medicine"]]["medications"]
    ]


def _hours(duration: str) -> int:
    """``"3 hours"``, ``"2 days"``, ``"1 week"``, ``"2 months"`` -> hours."""
    number, unit = str(duration).split()
    per = {"hour": 1, "day": 24, "week": 24 * 7, "month": 24 * 30}[unit.rstrip("s")]
    return int(number) * per


def _fahrenheit(temperature: str) -> float:
    return float(str(temperature).rstrip("°F"))


def red_flag(f: Mapping[str, Any]) -> bool:
    """Any red flag (chest pain with breathlessness, signs of a stroke, bleeding that will
    not stop, thoughts of suicide) sends the patient to emergency care at once: 911 or the
    nearest emergency room, and the 988 crisis line for thoughts of suicide."""
    return f["red_flag"] != "none"


_URGENT: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "chest_pain": lambda f: f["age"] >= 50 or f["pain_on_pressing"] == "no",
    "fever": lambda f: _fahrenheit(f["temperature"]) >= 103 or _hours(f["duration"]) > 3 * 24,
    "stomach_pain": lambda f: f["keeping_fluids_down"] == "no" or _hours(f["duration"]) > 2 * 24,
    "cut_bleeding": lambda f: f["wound_gaping"] == "yes",
    "dizziness": lambda f: f["fainted"] == "yes" or f["age"] >= 65,
}


def needs_urgent_care(f: Mapping[str, Any]) -> bool:
    """Without red flags, these are seen at urgent care the same day:

    - chest pain at 50 or over, or chest pain that pressing on the chest does not bring on
      (otherwise: a doctor's appointment within 3 days);
    - a fever of 103°F or more, or one that has lasted more than 3 days (otherwise:
      self-care with an over-the-counter fever reducer);
    - stomach pain with vomiting when fluids will not stay down, or lasting more than 2 days
      (otherwise: self-care with fluids);
    - a cut whose edges gape open, as it may need closing (otherwise: wound care at home);
    - dizziness with fainting, or at 65 or over (otherwise: a doctor's appointment within
      3 days).
    """
    return _URGENT[f["complaint"]](f)


_DOCTOR: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "headache": lambda f: _hours(f["duration"]) > 3 * 24 or f["usual_headache"] == "no",
    "cough_cold": lambda f: _hours(f["duration"]) >= 3 * 7 * 24,
    "low_mood": lambda f: _hours(f["duration"]) >= 2 * 7 * 24 or f["coping"] == "no",
}


def needs_doctor(f: Mapping[str, Any]) -> bool:
    """Without red flags, these need a doctor's appointment within 3 days:

    - a headache lasting more than 3 days, or unlike the patient's usual headaches
      (otherwise: self-care with an over-the-counter pain reliever);
    - a cough lasting 3 weeks or more (otherwise: a pharmacist's advice);
    - low mood for 2 weeks or more, or when the patient is not coping day to day
      (otherwise: self-care and support, with the crisis line as the safety net).
    """
    return _DOCTOR[f["complaint"]](f)


DECISIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    fn.__name__: fn for fn in (red_flag, needs_urgent_care, needs_doctor)
}
