"""Build the labelled detection set: public-style sentences with known PII spans.

    python benchmarks/detection_set/generate.py      # rewrites cases.jsonl (deterministic)

Faker with a fixed seed fills sentence templates; every slot's span is recorded as it is
written, so the labels are exact by construction. Hard negatives (order numbers, versions,
ZIP codes, times, amounts, digit runs that fail the Luhn check) sit in the same sentences
and in sentences of their own, unlabelled: anything found there is a false positive.
Each line: {"id", "text", "spans": [{"start", "end", "entity_type"}], "kind"}.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from faker import Faker

SEED = 20261122
OUT = Path(__file__).with_name("cases.jsonl")

# US area codes that are assigned (libphonenumber checks this); exchanges 2xx-9xx
AREA_CODES = [201, 202, 206, 212, 213, 214, 303, 305, 310, 312, 347, 404, 415, 469, 512, 602, 617, 646, 702,
              713, 718, 773, 818, 917, 929]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class Gen:
    def __init__(self, seed: int = SEED):
        self.f = Faker("en_US")
        self.f.seed_instance(seed)
        self.r = random.Random(seed)

    # -- PII values ------------------------------------------------------------------------
    def PERSON(self):
        return self.r.choice([self.f.name(), f"{self.f.first_name()} {self.f.last_name()}", self.f.last_name()])

    def EMAIL_ADDRESS(self):
        return self.r.choice([self.f.email(), self.f.company_email(), self.f.free_email()])

    def PHONE_NUMBER(self):
        a, b, c = self.r.choice(AREA_CODES), self.r.randint(200, 999), self.r.randint(0, 9999)
        return self.r.choice([f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1 {a} {b} {c:04d}",
                              f"+1-{a}-{b}-{c:04d}"])

    def US_SSN(self):
        return self.f.ssn()

    def CREDIT_CARD(self):
        while True:
            n = self.f.credit_card_number(card_type=self.r.choice(["visa16", "mastercard", "amex", "discover"]))
            if luhn_ok(n):
                break
        if len(n) == 16 and self.r.random() < 0.5:
            n = " ".join(n[i:i + 4] for i in range(0, 16, 4))
        return n

    def IBAN_CODE(self):
        return self.f.iban()

    def IP_ADDRESS(self):
        return self.f.ipv4_public() if self.r.random() < 0.8 else self.f.ipv6()

    def URL(self):
        return self.r.choice([self.f.url(), f"https://{self.f.domain_name()}/{self.f.uri_path()}", f"www.{self.f.domain_name()}"])

    def DATE_TIME(self):
        d = self.f.date_between(start_date="-80y", end_date="today")
        return self.r.choice([d.isoformat(), d.strftime("%m/%d/%Y"), d.strftime("%B %-d, %Y"), d.strftime("%d %b %Y")])

    def LOCATION(self):
        return self.r.choice([self.f.city(), self.f.country(), self.f.state()])

    # -- hard negatives --------------------------------------------------------------------
    def negative(self):
        r = self.r
        choices = [
            lambda: f"order #{r.randint(10**7, 10**8 - 1)}",
            lambda: f"version {r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}",
            lambda: f"v{r.randint(1, 5)}.{r.randint(0, 20)}",
            lambda: f"ZIP {r.randint(10000, 99999)}",
            lambda: f"at {r.randint(1, 12)}:{r.randint(0, 59):02d} {r.choice(['am', 'pm'])}",
            lambda: f"{r.randint(10, 23)}:{r.randint(0, 59):02d}",
            lambda: f"${r.randint(10, 9999)}.{r.randint(0, 99):02d}",
            lambda: f"{r.randint(1, 99)}% of cases",
            lambda: f"room {r.randint(100, 999)}",
            lambda: f"invoice INV-{r.randint(1000, 99999)}",
            lambda: f"batch {r.randint(100000, 999999)}",
            lambda: self.non_luhn(),
            lambda: f"ticket {r.randint(1000, 9999)}-{r.randint(100, 999)}",
            lambda: f"{r.randint(2, 40)} mg",
        ]
        return r.choice(choices)()

    def non_luhn(self):
        while True:
            n = "4" + "".join(str(self.r.randint(0, 9)) for _ in range(15))
            if not luhn_ok(n):
                return " ".join(n[i:i + 4] for i in range(0, 16, 4)) if self.r.random() < 0.5 else n


TEMPLATES = [
    "Patient {PERSON} was seen today; contact {EMAIL_ADDRESS} or {PHONE_NUMBER}.",
    "{PERSON} (SSN {US_SSN}) moved to {LOCATION} last year.",
    "Refund to card {CREDIT_CARD} approved for {PERSON}, {NEG}.",
    "Wire the deposit to IBAN {IBAN_CODE} before {DATE_TIME}.",
    "Login from {IP_ADDRESS} flagged; user {EMAIL_ADDRESS} notified, {NEG}.",
    "See {URL} for the consent form signed by {PERSON}.",
    "Born {DATE_TIME} in {LOCATION}; mother {PERSON}.",
    "Call {PHONE_NUMBER} to reschedule {NEG}.",
    "Follow-up with {PERSON} at {PHONE_NUMBER}, {NEG}.",
    "Social security number {US_SSN} on file, {NEG}.",
    "Her phone is {PHONE_NUMBER} and her email is {EMAIL_ADDRESS}.",
    "Payment by {CREDIT_CARD} failed twice; {NEG}.",
    "{PERSON} travels from {LOCATION} to {LOCATION} on {DATE_TIME}.",
    "Server {IP_ADDRESS} served {URL} during the incident, {NEG}.",
    "Account holder {PERSON}, IBAN {IBAN_CODE}.",
    "Reach me at {PHONE_NUMBER} after {NEG}.",
    "Forwarded to {EMAIL_ADDRESS} by {PERSON} on {DATE_TIME}.",
    "ssn {US_SSN}; dob {DATE_TIME}; {NEG}.",
    "Visited {LOCATION} with {PERSON} and {PERSON}.",
    "The clinic's page {URL} lists {PHONE_NUMBER} for appointments.",
]
NEGATIVE_TEMPLATES = [
    "Shipment {NEG} left the warehouse, {NEG}.",
    "Upgrade to {NEG} fixed the crash reported in {NEG}.",
    "Dose adjusted to {NEG} for {NEG}.",
    "Meeting moved to {NEG}, see {NEG}.",
    "Samples from {NEG} were stored in {NEG}.",
    "the follow-up visit went well and nothing changed.",
    "Results within normal range; continue current plan, {NEG}.",
]


def fill(gen: Gen, template: str) -> tuple[str, list[dict]]:
    text, spans, i = "", [], 0
    while i < len(template):
        j = template.find("{", i)
        if j < 0:
            text += template[i:]
            break
        text += template[i:j]
        k = template.index("}", j)
        slot = template[j + 1:k]
        value = gen.negative() if slot == "NEG" else getattr(gen, slot)()
        if slot != "NEG":
            spans.append({"start": len(text), "end": len(text) + len(value), "entity_type": slot})
        text += value
        i = k + 1
    return text, spans


def build(n_positive: int = 400, n_negative: int = 100) -> list[dict]:
    gen = Gen()
    cases = []
    for n in range(n_positive):
        text, spans = fill(gen, TEMPLATES[n % len(TEMPLATES)])
        cases.append({"id": f"p{n:04d}", "kind": "pii", "text": text, "spans": spans})
    for n in range(n_negative):
        text, spans = fill(gen, NEGATIVE_TEMPLATES[n % len(NEGATIVE_TEMPLATES)])
        cases.append({"id": f"n{n:04d}", "kind": "negative", "text": text, "spans": spans})
    return cases


if __name__ == "__main__":
    cases = build()
    with open(OUT, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(c, ensure_ascii=False) + "\n" for c in cases)
    print(f"wrote {len(cases)} cases to {OUT}")
