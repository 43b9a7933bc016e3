"""A labelled set of structured identifiers and word dates, built from our own templates and
arithmetic (no Faker, nothing of Presidio's test cases): card numbers of every brand and
length (Luhn-valid, grouped several ways) and dates written with month names, each in a
sentence, with hard negatives beside them (Luhn-failing runs, unknown prefixes, versions,
times, amounts, a month name alone). Deterministic (``random.Random(20261206)``).
"""

from __future__ import annotations

import random

from jupyter_guard.redaction.recognizers import CARD_BRANDS, luhn_valid

SEED = 20261206
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
SHORT = [m[:3] for m in MONTHS]
CARD_TEMPLATES = ["Paid with card {} yesterday.", "card number: {}", "Refund to {} please",
                  "The PAN on file is {}.", "{} was declined at the till"]
DATE_TEMPLATES = ["She was admitted on {}.", "DOB {}", "Follow-up visit {} at the clinic.",
                  "Discharged {}, stable.", "Since {} the dose is 5 mg."]
NEGATIVES = ["Order 123456789012 shipped", "Ticket 9876543210987654 closed", "version 3.9.11 released",
             "Room 1204, floor 12", "Amount 1,234.56 USD", "Call at 10:30 today", "In May we met again",
             "March forward, team", "Batch 4000 0000 0000 0001 is a test id", "ZIP 02139", "build 2024.10.1"]


def _card(rng: random.Random, brand: str) -> str:
    ranges, lengths = CARD_BRANDS[brand]
    low, high = rng.choice(ranges)
    prefix = str(rng.randint(low, high))
    n = rng.choice(sorted(lengths))
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(n - len(prefix) - 1))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("no check digit")


def _group(rng: random.Random, digits: str) -> str:
    n = len(digits)
    sep = rng.choice([" ", "-", ""])
    if n == 15 and rng.random() < 0.7:
        parts = [digits[:4], digits[4:10], digits[10:]]  # Amex 4-6-5
    else:
        parts = [digits[i:i + 4] for i in range(0, n, 4)]
    return sep.join(parts)


def _word_date(rng: random.Random) -> str:
    day, month, year = rng.randint(1, 28), rng.randrange(12), rng.randint(1950, 2030)
    name = rng.choice([MONTHS[month], SHORT[month]])
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(day if day < 20 else day % 10, "th") if rng.random() < 0.3 else ""
    form = rng.randrange(5)
    if form == 0:
        return f"{name} {day}{suffix}, {year}"
    if form == 1:
        return f"{day}{suffix} {name} {year}"
    if form == 2:
        return f"{day}{suffix} of {name}, {year}"
    if form == 3:
        return f"{rng.choice(['Mon', 'Tuesday', 'Wed', 'Friday'])}, {name} {day}, {year}"
    return f"{name} {year}"


def _labelled(template: str, value: str, entity: str, kind: str) -> dict:
    """One case: ``value`` written into ``template``, its span labelled ``entity``."""
    text = template.format(value)
    start = text.index(value)
    return {"text": text, "spans": [(start, start + len(value), entity)], "kind": kind}


def cases(n_per_brand: int = 25, n_dates: int = 150) -> list[dict]:
    """[{text, spans: [(start, end, entity)]}] -- negatives have no spans."""
    rng = random.Random(SEED)
    out = []
    for brand in CARD_BRANDS:
        for _ in range(n_per_brand):
            value = _group(rng, _card(rng, brand))
            out.append(_labelled(rng.choice(CARD_TEMPLATES), value, "CREDIT_CARD", brand))
    for _ in range(n_dates):
        value = _word_date(rng)
        out.append(_labelled(rng.choice(DATE_TEMPLATES), value, "DATE_TIME", "word date"))
    for text in NEGATIVES:
        out.append({"text": text, "spans": [], "kind": "negative"})
    for _ in range(40):  # Luhn-failing 16-digit runs with a brand prefix
        digits = _card(rng, "visa")
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        if len(digits) == 16:
            out.append({"text": f"Reference {_group(rng, digits)} noted", "spans": [], "kind": "negative"})
    return out


# -- street addresses (our own word lists; no Faker) ----------------------------------------------

STREETS = ["Oak", "Maple", "Cedar", "Pine", "Elm", "Main", "Church", "Mill", "Park", "Lake", "Hill", "River",
           "Station", "Market", "Spring", "Willow", "Chestnut", "Highland", "Meadow", "Harbor", "5th", "42nd",
           "3rd", "Old Farm", "Green Valley", "Sunset", "Orchard"]
SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive", "Dr",
            "Court", "Ct", "Place", "Way", "Terrace", "Parkway", "Circle", "Highway"]
CITIES = ["Springfield", "Riverton", "Fairview", "Ashford", "Millbrook", "Georgetown", "Lakeside", "Brookhaven",
          "Cedar Falls", "Port Ellis", "Northgate", "Westbury"]
STATES = ["IL", "NY", "CA", "TX", "WA", "MA", "OH", "GA", "CO", "OR"]
UNITS = ["Apt 4B", "Suite 300", "Unit 12", "#7", "Apt. 2"]
ADDRESS_TEMPLATES = ["She lives at {}.", "Ship to {} by Friday", "Address: {}", "Moved from {} last year",
                     "{} (home)", "the clinic at {} called"]
ADDRESS_NEGATIVES = ["the 3 main reasons", "a 3 way handshake", "we sold 40 oak boards", "2 lane bridge closed",
                     "Room 12 on floor 3", "took 5 st johns wort tablets", "after 3 long drives home",
                     "page 12 court rulings", "4 park benches were painted", "route 66 diner"]


def _address(rng: random.Random) -> str:
    n = str(rng.randint(1, 9999)) + rng.choice(["", "", "", "A"])
    street = rng.choice(STREETS)
    suffix = rng.choice(SUFFIXES)
    form = rng.randrange(6)
    if form == 0:
        return f"{n} {street} {suffix}"
    if form == 1:
        return f"{n} {rng.choice(['N', 'S', 'E', 'W', 'North'])} {street} {suffix}, {rng.choice(CITIES)}, " \
               f"{rng.choice(STATES)} {rng.randint(10000, 99999)}"
    if form == 2:
        return f"{n} {street} {suffix}, {rng.choice(UNITS)}, {rng.choice(CITIES)}, {rng.choice(STATES)} " \
               f"{rng.randint(10000, 99999)}"
    if form == 3:
        return f"{n} {street} {suffix}., {rng.choice(CITIES)}"
    if form == 4:
        return f"{n} {street.lower()} {suffix.lower()}"
    return f"{n} {street} {suffix} {rng.choice(UNITS)}"


def address_cases(n: int = 200) -> list[dict]:
    """Addresses in sentences, each labelled LOCATION as one span, and near-miss negatives."""
    rng = random.Random(SEED + 1)
    out = []
    for _ in range(n):
        value = _address(rng)
        out.append(_labelled(rng.choice(ADDRESS_TEMPLATES), value, "LOCATION", "address"))
    for text in ADDRESS_NEGATIVES:
        out.append({"text": text, "spans": [], "kind": "negative"})
    return out
