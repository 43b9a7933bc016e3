"""Distinct-text corpora for the detection speed benchmark: no line repeats, so nothing is won
by deduplication (the case of a notebook full of log lines, an export, the output filter).

Written from our own templates and a hand-written vocabulary (no Faker, no Presidio cases);
deterministic for a seed. Two kinds:

* ``notes``: sentences of everyday English; one line in eight holds one value a detector should
  find (e-mail, phone, SSN, card, date, IP, IBAN, URL);
* ``logs``: service log lines -- an ISO timestamp, a level, a component, request ids, durations,
  counts, and now and then a client IP or an e-mail -- digit-dense text on every line.
"""

from __future__ import annotations

import random

from jupyter_guard.redaction.recognizers import luhn_valid

WORDS = (
    "the of and to in a is that for it as was with be by on not this are or from at which but have "
    "an they you were there been one all we their has would when if so no will can more out about "
    "who up said do what them time some into patient visit report follow week clinic notes review "
    "morning results pending order sample team weekly meeting plan update data file table column "
    "analysis model script server request queue storage backup project budget invoice payment "
    "travel office building floor room desk call message letter form record history summary "
    "change issue ticket status ready open closed late early again after before during under "
    "over between without within because while until since although discussed agreed noted "
    "checked sent received asked moved added removed updated confirmed scheduled cancelled"
).split()
CAPITALS = "Monday Friday Tuesday Lab North South Building Ward Service Desk Team Board".split()
COMPONENTS = "api.auth api.orders worker.billing scheduler cache.redis db.pool ingest.kafka web.static".split()
LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
TLDS = ["com", "org", "net", "io", "de", "co.uk"]


def _pii(rnd: random.Random) -> str:
    k = rnd.randrange(9)
    if k == 0:
        return f"{rnd.choice(WORDS)}.{rnd.choice(WORDS)}{rnd.randint(1, 999)}@example.{rnd.choice(TLDS)}"
    if k == 1:
        return f"({rnd.randint(201, 989)}) {rnd.randint(201, 989)}-{rnd.randint(1000, 9999)}"
    if k == 2:
        return f"{rnd.randint(100, 665)}-{rnd.randint(10, 99)}-{rnd.randint(1000, 9999)}"
    if k == 3:
        return _card(rnd)
    if k == 4:
        return f"{rnd.randint(1, 12)}/{rnd.randint(1, 28)}/{rnd.randint(1950, 2030)}"
    if k == 5:
        return ".".join(str(rnd.randint(1, 254)) for _ in range(4))
    if k == 6:
        return f"DE{rnd.randint(10, 99)} {rnd.randint(1000, 9999)} {rnd.randint(1000, 9999)} " \
               f"{rnd.randint(1000, 9999)} {rnd.randint(1000, 9999)} {rnd.randint(10, 99)}"
    if k == 7:
        return f"https://www.{rnd.choice(WORDS)}{rnd.randint(1, 99)}.{rnd.choice(TLDS)}/{rnd.choice(WORDS)}"
    return f"+44 20 {rnd.randint(7000, 8999)} {rnd.randint(1000, 9999)}"


def _card(rnd: random.Random) -> str:
    """A Luhn-valid 16-digit Visa number, grouped by four."""
    body = "4" + "".join(str(rnd.randint(0, 9)) for _ in range(14))
    s = next(body + d for d in "0123456789" if luhn_valid(body + d))
    return " ".join(s[i:i + 4] for i in range(0, 16, 4))


def note(rnd: random.Random) -> str:
    n = rnd.randint(8, 22)
    words = [rnd.choice(WORDS) for _ in range(n)]
    if rnd.random() < 0.3:
        words.insert(rnd.randrange(n), rnd.choice(CAPITALS))
    if rnd.random() < 0.3:
        words.insert(rnd.randrange(n), str(rnd.randint(2, 400)))
    if rnd.random() < 0.125:
        words.insert(rnd.randrange(n), _pii(rnd))
    return " ".join(words).capitalize() + "."


def logline(rnd: random.Random) -> str:
    ts = (f"2026-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:"
          f"{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}.{rnd.randint(0, 999):03d}Z")
    msg = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 9)))
    extra = ""
    r = rnd.random()
    if r < 0.1:
        extra = f" client={'.'.join(str(rnd.randint(1, 254)) for _ in range(4))}"
    elif r < 0.15:
        extra = f" user={rnd.choice(WORDS)}{rnd.randint(1, 99)}@example.{rnd.choice(TLDS)}"
    return (f"{ts} {rnd.choice(LEVELS)} {rnd.choice(COMPONENTS)} req={rnd.getrandbits(48):012x} "
            f"{msg} took={rnd.random() * 900:.1f}ms rows={rnd.randint(0, 5000)}{extra}")


def corpus(kind: str, size_bytes: int, seed: int = 20261207) -> list[str]:
    """Distinct lines of ``kind`` adding up to about ``size_bytes`` characters."""
    rnd = random.Random(seed)
    make = {"notes": note, "logs": logline}[kind]
    seen: set[str] = set()
    out: list[str] = []
    total = 0
    while total < size_bytes:
        line = make(rnd)
        if line in seen:
            continue
        seen.add(line)
        out.append(line)
        total += len(line) + 1
    return out
