"""Presidio's phone recognizer with libphonenumber's per-candidate work remembered.

``PhoneRecognizer.analyze`` runs libphonenumber's ``PhoneNumberMatcher`` over the text once per
region (eight by default). The matcher finds candidate runs of digits and punctuation with a
regex (cheap), then parses and validates each candidate and its inner parts (dear: ~1-3 ms a
line on digit-dense text). What it decides for a candidate depends on the candidate, the
region and leniency, the character before it and the three after it (the previous/next-
character checks and the ``:ss`` time-stamp suffix) -- nothing else of the text. Log lines
and tables repeat such candidates all the time (dates, hours, small counts, hex fragments),
even when no line repeats. :class:`RememberingMatcher` keeps that decision per key (bounded;
the neighbours enter the key only as what the matcher tests of them),
so a candidate seen before costs a dictionary lookup.

Most candidates in such text are short numbers ("rows=861", "14:05") that cannot be a valid
number anywhere: a valid number's national significant number has at least as many digits as
the shortest possible length of its region (4 in Germany, 10 in the US), and a written number
has at least the digits of its NSN (plus country code or prefixes) unless it has letters
(vanity numbers: letters become digits). For a candidate without letters and with fewer digits
than any number the matcher's region could parse to (:func:`fewest_digits`), the matcher's own
checks and its count of tries are replayed without parsing. The findings are libphonenumber's
(tests/redaction/test_prefilter.py compares them with plain Presidio).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatch, PhoneNumberMatcher
from phonenumbers import phonenumbermatcher as _pnm
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult

#: remembered candidate decisions per process; cleared when full (memory stays bounded)
MEMO_LIMIT = 200_000
_MEMO: dict = {}
_LOCK = threading.Lock()


_DESCS = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
          "voip", "pager", "uan", "voicemail", "no_international_dialling")


def _inserted_digits(md) -> int:
    """Digits a region's national-prefix transform rule writes in (the NANP islands' area codes,
    Norfolk Island's 3): a number may have that many more NSN digits than it was written with."""
    rule = getattr(md, "national_prefix_transform_rule", None) or ""
    return sum(ch.isdigit() for ch in re.sub(r"\\\d", "", rule))


def _min_length(region: str | None = None, cc: int | None = None) -> int:
    """Shortest NSN that ``is_valid_number`` can accept for a region (or non-geographic code):
    the possible lengths of its number types (local-only lengths are not valid numbers); a type
    with a pattern and no lengths counts as length 1, to stay on the safe side."""
    md = PhoneMetadata.metadata_for_region(region) if region else PhoneMetadata.metadata_for_nongeo_region(cc)
    if md is None:
        return 1 << 30
    best = 1 << 30
    for name in _DESCS:
        desc = getattr(md, name, None)
        if desc is None or not getattr(desc, "national_number_pattern", None):
            continue
        lengths = [n for n in (desc.possible_length or ()) if n > 0]
        if not desc.possible_length:
            lengths = [1]
        if lengths:
            best = min(best, min(lengths))
    return best


def _metadata(region: str, cc: int):
    return PhoneMetadata.metadata_for_nongeo_region(cc) if region == "001" else PhoneMetadata.metadata_for_region(region)


@lru_cache(maxsize=None)
def _fewest_international() -> int:
    """Fewest digits of a number written with its country code: len(cc) + shortest NSN of the
    code's regions, less the digits the code's main region's transform rule may write in."""
    best = 1 << 30
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        shortest = min(_min_length(cc=cc) if r == "001" else _min_length(r) for r in regions)
        main = _metadata(regions[0], cc)
        best = min(best, len(str(cc)) + shortest - (_inserted_digits(main) if main is not None else 0))
    return best


@lru_cache(maxsize=None)
def fewest_digits(region: str, international: bool = True) -> int:
    """Fewest digits a letter-free candidate needs to parse to a valid number in ``region``.
    National (no plus sign, no international dialling prefix of ``region``): the shortest NSN
    of any region sharing ``region``'s code (is_valid_number accepts a number of any of them);
    ``international``: also any country's shortest number with its code. Both less what
    ``region``'s transform rule may write in. An unknown region parses nothing national."""
    best = _fewest_international() if international else 1 << 30
    cc = phonenumbers.country_code_for_region(region)
    for sibling in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ()) if cc else ():
        best = min(best, _min_length(sibling))
    md = PhoneMetadata.metadata_for_region(region)
    return max(0, best - (_inserted_digits(md) if md is not None else 0))


@lru_cache(maxsize=None)
def _idd(region: str):
    md = PhoneMetadata.metadata_for_region(region)
    prefix = getattr(md, "international_prefix", None) if md is not None else None
    return re.compile(prefix) if prefix else None


def _threshold(region: str, shape) -> int:
    """The digits a candidate of this shape needs in ``region`` (see fewest_digits)."""
    _, _, _, plus, digits = shape
    idd = _idd(region)
    international = plus or (idd is not None and idd.match(digits) is not None)
    return fewest_digits(region, international)


_SHAPES: dict = {}  # candidate -> (digits, letter, tries, plus sign, its digits normalised)
_PLUS = frozenset("+\uff0b")


def _shape(candidate: str) -> tuple[int, bool, int | None]:
    """What a candidate's parse-free decision needs, remembered per candidate string (short
    candidates -- "14", "861", "58.5" -- repeat endlessly): its digits, whether it has a letter,
    the tries ``_extract_inner_match`` consumes when no part of it parses (None: the decision
    ends before, at the slash-date check), whether it has a plus sign, its digits."""
    shape = _SHAPES.get(candidate)
    if shape is None:
        digits = sum(ch.isdecimal() for ch in candidate)
        alpha = any(ch.isalpha() for ch in candidate)
        tries = None
        if not _pnm._SLASH_SEPARATED_DATES.search(candidate):
            tries = 0
            for inner in _pnm._INNER_MATCHES:
                group_match = inner.search(candidate)
                if group_match:
                    tries += 1
                while group_match:
                    tries += 1
                    group_match = inner.search(candidate, group_match.start() + 1)
        shape = (digits, alpha, tries, not _PLUS.isdisjoint(candidate),
                 phonenumbers.normalize_digits_only(candidate))
        with _LOCK:
            if len(_SHAPES) >= MEMO_LIMIT:
                _SHAPES.clear()
            _SHAPES[candidate] = shape
    return shape


def _parse_free_tries(text: str, offset: int, candidate: str, shape) -> int:
    """Tries ``_extract_match`` consumes on a candidate none of whose parts can parse: none
    after an early exit (a slash-separated date, a time stamp), else its inner parts'."""
    if shape[2] is None:
        return 0
    if _pnm._TIME_STAMPS.search(candidate) and _pnm._TIME_STAMPS_SUFFIX.match(text, offset + len(candidate)):
        return 0
    return shape[2]


def _replay_without_parsing(matcher, candidate, offset, shape) -> None:
    """``_extract_match`` for a candidate none of whose parts can parse to a valid number: the
    same early exits and the same tries consumed, no parse (see the module docstring)."""
    tries = _parse_free_tries(matcher.text, offset, candidate, shape)
    if matcher._max_tries > tries:
        matcher._max_tries -= tries
        return None
    for inner in _pnm._INNER_MATCHES:  # tries run out inside this candidate: count them exactly
        group_match = inner.search(candidate)
        first = True
        while group_match and matcher._max_tries > 0:
            if first:
                matcher._max_tries -= 1
                first = False
            matcher._max_tries -= 1
            group_match = inner.search(candidate, group_match.start() + 1)
    return None


def regions_that_could_match(text: str, regions) -> list:
    """The regions whose matcher could find a number in ``text``: those for which one of the
    matcher's candidates has a letter or the digits of a number there. For the others the
    matcher's candidates are exactly ``_PATTERN``'s matches (trimming a candidate needs an
    "x"), each decided without a match -- so it finds nothing."""
    shapes = [_shape(m.group()) for m in _pnm._PATTERN.finditer(text)]
    if any(shape[1] for shape in shapes):
        return list(regions)
    return [r for r in regions if any(shape[0] >= _threshold(r, shape) for shape in shapes)]


def _rejects(ch: str) -> bool:
    """The matcher's test of a neighbouring character (a Latin letter or invalid punctuation)."""
    return PhoneNumberMatcher._is_invalid_punctuation_symbol(ch) or PhoneNumberMatcher._is_latin_letter(ch)


class RememberingMatcher(PhoneNumberMatcher):
    """``PhoneNumberMatcher`` whose ``_extract_match`` (one candidate's decision) is remembered,
    and replayed without parsing for candidates too short to be a number."""

    def _extract_match(self, candidate, offset):
        text = self.text
        end = offset + len(candidate)
        if self.leniency >= Leniency.VALID:
            shape = _shape(candidate)
            if not shape[1] and shape[0] < _threshold(self.preferred_region, shape):
                return _replay_without_parsing(self, candidate, offset, shape)
        # with few tries left the decision could be cut short: decide it afresh
        if self._max_tries <= 64 * (len(candidate) + 1):
            return super()._extract_match(candidate, offset)
        # all the decision reads of the text around the candidate: whether the character before
        # and the one after would reject it, and whether a ":ss" time-stamp suffix follows
        key = (self.preferred_region, self.leniency, candidate,
               offset > 0 and _rejects(text[offset - 1]), end < len(text) and _rejects(text[end]),
               _pnm._TIME_STAMPS_SUFFIX.match(text, end) is not None)
        hit = _MEMO.get(key)
        if hit is None:
            before = self._max_tries
            match = super()._extract_match(candidate, offset)
            found = None if match is None else (match.start - offset, match.raw_string, match.number)
            hit = (found, self._max_tries - before)
            with _LOCK:
                if len(_MEMO) >= MEMO_LIMIT:
                    _MEMO.clear()
                _MEMO[key] = hit
            return match
        found, tries = hit
        self._max_tries += tries
        return None if found is None else PhoneNumberMatch(offset + found[0], found[1], found[2])

    def _parse_and_verify(self, candidate, offset):
        # the inner parts of a candidate ("2026", "01-15" of "2026-01-15"): no parse for those
        # that cannot be a number (this method consumes no tries)
        if self.leniency >= Leniency.VALID:
            shape = _shape(candidate)
            if not shape[1] and shape[0] < _threshold(self.preferred_region, shape):
                return None
        return super()._parse_and_verify(candidate, offset)


def is_presidio_phone_recognizer(rec) -> bool:
    cls = type(rec)
    return cls.__name__ == "PhoneRecognizer" and cls.__module__.startswith("presidio_analyzer")


def _trim(candidate: str) -> str:
    """The matcher's cut of a candidate at a second number's start ("... / x")."""
    m = _pnm._SECOND_NUMBER_START_PATTERN.search(candidate)
    return candidate[:m.start()] if m else candidate


def _walk(text: str) -> list[tuple[int, str]]:
    """The matcher's candidates while it finds nothing: (start, candidate) in its order (the
    search resumes after each candidate, trimmed at a second number's start as it does)."""
    out = []
    index = 0
    while True:
        m = _pnm._PATTERN.search(text, index)
        if m is None:
            return out
        candidate = _trim(m.group())
        out.append((m.start(), candidate))
        index = m.start() + len(candidate)


def _region_matches(text: str, region: str, leniency, walk) -> list:
    """``list(PhoneNumberMatcher(text, region, leniency))``, walking the shared candidates:
    those too short for ``region`` only count their tries; the others are decided by the
    matcher itself; after a match that ends inside its candidate the matcher goes on alone."""
    matcher = RememberingMatcher(text, region, leniency=leniency)
    found = []
    for start, candidate in walk:
        if matcher._max_tries <= 0:
            return found
        shape = _shape(candidate)
        if not shape[1] and shape[0] < _threshold(region, shape):
            cost = 1 + _parse_free_tries(text, start, candidate, shape)  # and the candidate's own try
            if matcher._max_tries > cost:
                matcher._max_tries -= cost
                continue
        match = matcher._extract_match(candidate, start)
        if match is None:
            matcher._max_tries -= 1
            continue
        found.append(match)
        if match.end != start + len(candidate):  # the next search starts inside this candidate
            matcher._search_index = match.end
            matcher._state = PhoneNumberMatcher._NOT_READY
            found += list(matcher)
            return found
    return found


def phone_results(rec, text: str) -> list[RecognizerResult]:
    """``rec.analyze(text)`` for Presidio's PhoneRecognizer: the same matcher per region, the
    same spans and score (and an explanation, which Presidio's context enhancer writes to).
    The candidates are found once for all regions (``_walk``)."""
    results = []
    meta = {RecognizerResult.RECOGNIZER_NAME_KEY: rec.name, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: rec.id}
    entity = rec.supported_entities[0]
    regions = rec.supported_regions
    shared = rec.leniency >= Leniency.VALID
    if shared:
        regions = regions_that_could_match(text, regions)
        walk = _walk(text) if regions else []
    for region in regions:
        matches = (_region_matches(text, region, rec.leniency, walk) if shared
                   else RememberingMatcher(text, region, leniency=rec.leniency))
        for match in matches:
            explanation = AnalysisExplanation(recognizer=type(rec).__name__, original_score=rec.SCORE,
                                              textual_explanation=f"phone number of region {region}")
            results.append(RecognizerResult(entity, match.start, match.end, rec.SCORE,
                                            analysis_explanation=explanation, recognition_metadata=dict(meta)))
    return EntityRecognizer.remove_duplicates(results) if len(results) > 1 else results
