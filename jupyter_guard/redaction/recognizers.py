"""jupyter_guard's own pattern recognizers, beside Presidio's predefined ones (the Presidio way:
``PatternRecognizer`` subclasses with validators; listed in ``OWN_RECOGNIZERS``).

* :class:`CardNumberRecognizer` -- payment card numbers of every major brand and length that
  Presidio's card pattern misses: Mastercard's 2-series (2221-2720), Maestro (50, 56-69),
  19-digit Visa/UnionPay/Maestro/Discover, and American Express grouped 4-6-5. A candidate is a
  run of 12-19 digits with at most single spaces or dashes between them; it counts only when
  it passes the Luhn check *and* its prefix and length are a brand's.
* :class:`StreetAddressRecognizer` -- street addresses as one LOCATION span (number, street,
  suffix, unit, city, state, ZIP), which Presidio only finds piecewise through the NER model.
* :class:`VersionAwareDateRecognizer` -- Presidio's date recognizer, replacing it, with its
  ``dd.mm.yy`` pattern kept off version numbers ("version 3.9.11") and IP addresses.
* :class:`WordDateRecognizer` -- dates written with the month's name ("March 3, 2024",
  "3rd of March 2024", "Tue, 3 Mar 2024", "March 2024"), which Presidio's date patterns (digits
  and three-letter upper-case months only) miss. A month name alone ("in May") is not a date.
"""

from __future__ import annotations

import re

from presidio_analyzer import Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import DateRecognizer

# -- payment cards ----------------------------------------------------------------------------

#: (IIN prefix ranges as (low, high) over the first digits, allowed lengths) per brand
CARD_BRANDS: dict[str, tuple[tuple[tuple[int, int], ...], frozenset[int]]] = {
    "visa": (((4, 4),), frozenset({13, 16, 19})),
    "mastercard": (((51, 55), (2221, 2720)), frozenset({16})),
    "amex": (((34, 34), (37, 37)), frozenset({15})),
    "discover": (((6011, 6011), (644, 649), (65, 65)), frozenset({16, 17, 18, 19})),
    "jcb": (((3528, 3589),), frozenset({16, 17, 18, 19})),
    "diners": (((300, 305), (36, 36), (38, 39)), frozenset({14, 15, 16, 17, 18, 19})),
    "unionpay": (((62, 62),), frozenset({16, 17, 18, 19})),
    "maestro": (((50, 50), (56, 69)), frozenset(range(12, 20))),
}


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The brand whose prefix and length fit ``digits`` (digits only), or None."""
    for brand, (ranges, lengths) in CARD_BRANDS.items():
        if len(digits) not in lengths:
            continue
        for low, high in ranges:
            width = len(str(low))
            if low <= int(digits[:width]) <= high:
                return brand
    return None


class CardNumberRecognizer(PatternRecognizer):
    """Card numbers by brand prefix, length and Luhn (see the module docstring)."""

    PATTERNS = [Pattern("card number (12-19 digits, single space or dash separators)",
                        r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", 0.3)]
    CONTEXT = ["card", "credit", "debit", "visa", "mastercard", "amex", "cc", "pan", "payment"]

    def __init__(self, supported_language: str = "en"):
        super().__init__(supported_entity="CREDIT_CARD", patterns=self.PATTERNS, context=self.CONTEXT,
                         supported_language=supported_language, name="CardNumberRecognizer")

    def validate_result(self, pattern_text: str) -> bool:
        digits = re.sub(r"[ -]", "", pattern_text)
        if len(set(digits)) == 1:
            return False  # 0000 0000 0000 0000 passes Luhn
        return luhn_valid(digits) and card_brand(digits) is not None


# -- dates written with the month's name --------------------------------------------------------

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[6-9]\d\d|2[01]\d\d)"
_WEEKDAY = r"(?:(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|sday|nesday|rsday|urday)?\.?,?\s+)?"


class WordDateRecognizer(PatternRecognizer):
    """Dates with the month's name (see the module docstring). Matched case-insensitively."""

    PATTERNS = [
        # March 3, 2024 / Mar 3rd 2024 / Tuesday, March 3, 2024 / March 3
        Pattern("month day[, year]", rf"\b{_WEEKDAY}{_MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?\b(?!\s*[:.]\d)", 0.6),
        # 3 March 2024 / 3rd of March, 2024 / Tue 3 Mar 2024
        Pattern("day month [year]", rf"\b{_WEEKDAY}{_DAY}(?:\s+of)?\s+{_MONTH},?(?:\s+{_YEAR})?\b", 0.6),
        # March 2024 / March, 2024
        Pattern("month year", rf"\b{_MONTH},?\s+{_YEAR}\b", 0.5),
    ]
    CONTEXT = ["date", "born", "birth", "dob", "on", "since", "until", "visit", "admitted", "discharged"]

    def __init__(self, supported_language: str = "en"):
        super().__init__(supported_entity="DATE_TIME", patterns=self.PATTERNS, context=self.CONTEXT,
                         supported_language=supported_language, name="WordDateRecognizer",
                         global_regex_flags=re.IGNORECASE | re.MULTILINE | re.DOTALL)


# -- street addresses -------------------------------------------------------------------------

_SUFFIX = (r"(?i:street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way"
           r"|terrace|ter|parkway|pkwy|circle|cir|highway|hwy|square|sq|trail|trl|crescent|cres|close|row"
           r"|alley|plaza|loop|pike|expressway|expy|freeway|fwy)\.?")
_DIRECTION = r"(?i:n|s|e|w|ne|nw|se|sw|north|south|east|west)\.?"
_STREET_WORD = r"(?:\d{1,3}(?i:st|nd|rd|th)|[A-Za-z][A-Za-z'-]*)"
_UNIT = r"(?:,?\s*(?i:apt|apartment|suite|ste|unit|fl|floor|rm|room)\.?\s*#?\s*[A-Za-z0-9-]{1,6}|,?\s*#\s*[A-Za-z0-9-]{1,6})"
_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
           "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR").split()
_CITY = r"[A-Z][a-z'.-]+(?:[ -][A-Z][a-z'.-]+){0,2}"
_ZIP = r"\d{5}(?:-\d{4})?"
_STATE = "(?:" + "|".join(_STATES) + ")"


class StreetAddressRecognizer(PatternRecognizer):
    """Street addresses as one span: house number, street name and suffix, then optionally a
    unit, a city, a state and a ZIP code ("77 N Maple Ave, Apt 4B, Springfield, IL 62704").
    Street suffixes and units match in any case ("9 market street"); the city must be
    capitalised, so the address does not run on into the sentence."""

    PATTERNS = [
        Pattern("number street suffix [unit] [, city [, state] [zip]]",
                rf"\b\d{{1,6}}[A-Za-z]?\s+(?:{_DIRECTION}\s+)?(?:{_STREET_WORD}\s+){{1,3}}?{_SUFFIX}(?!\w)"
                rf"(?:\s+{_DIRECTION}(?!\w))?{_UNIT}?"
                rf"(?:,?\s+{_CITY}(?:,?\s+{_STATE}\b)?(?:,?\s+{_ZIP}\b)?(?<=[A-Za-z0-9])|,?\s+{_STATE}\s+{_ZIP}\b)?",
                0.85),
    ]
    CONTEXT = ["address", "street", "lives", "live", "home", "ship", "mail", "deliver", "residence", "resides"]

    def __init__(self, supported_language: str = "en"):
        super().__init__(supported_entity="LOCATION", patterns=self.PATTERNS, context=self.CONTEXT,
                         supported_language=supported_language, name="StreetAddressRecognizer",
                         global_regex_flags=re.MULTILINE | re.DOTALL)


# -- numeric dates without version numbers ----------------------------------------------------

DOTTED = "dd.mm.yyyy or dd.mm.yy"


class VersionAwareDateRecognizer(DateRecognizer):
    """Presidio's DateRecognizer with its dotted pattern kept off version numbers and addresses:
    ``dd.mm.yy`` also reads "version 3.9.11", "v2.8.97" and the "11.8.61" of "173.11.8.61".
    The dotted date here must not touch another dot-number or a word, nor follow "version",
    "v", "release" or "build"; the other patterns are Presidio's."""

    PATTERNS = [p if p.name != DOTTED else Pattern(
        DOTTED,
        r"(?<![\w.])(?<!version )(?<!ver\. )(?<!release )(?<!build )(?<!v)"
        r"(([1-9]|0[1-9]|[1-2][0-9]|3[0-1])\.([1-9]|0[1-9]|1[0-2])\.(\d{4}|\d{2}))(?!\.\d|\w)",
        p.score) for p in DateRecognizer.PATTERNS]

    def __init__(self, supported_language: str = "en"):
        super().__init__(patterns=self.PATTERNS, supported_language=supported_language)
        self.name = "VersionAwareDateRecognizer"


#: added to Presidio's predefined recognizers (not when a registry YAML replaces that set)
OWN_RECOGNIZERS = (CardNumberRecognizer, WordDateRecognizer, StreetAddressRecognizer)
#: predefined recognizers that an own one replaces
REPLACES = {"DateRecognizer": VersionAwareDateRecognizer}
