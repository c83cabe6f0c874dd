"""The search box's query language: text in, a ``ParsedQuery`` out, never an exception.

Grammar (EBNF; words are separated by whitespace, names of filters are read in any case)::

    query    = [ sign ] term { sign term } ;          (* filters and quotes may stand anywhere *)
    sign     = "+" | "-" ;                            (* a "+" or "-" standing alone, between spaces *)
    term     = [ weight ":" ] ( like | words ) ;
    weight   = digits [ "." digits ] | "." digits ;   (* 0.01 .. 100; the part after ":" starts with a letter *)
    like     = "like:" digits ;                       (* an image of the collection, by its number *)
    words    = word { word } ;                        (* one description: "a red bicycle by the sea" *)
    filter   = "folder:" value                        (* only images in this folder (and its subfolders) *)
             | "type:" value                          (* a file format: jpeg, png, heic, ... *)
             | "taken:" period [ ".." [ period ] ]    (* the date taken: 2020, 2020-01, 2020-01-31 *)
             | "taken:" ".." period
             | "label:" value ;                       (* a label the encoder sees (several: all of them) *)
    keyword  = '"' { any character but '"' } '"' ;    (* exact text in the path: file and folder names *)
    value    = non-space { non-space } | '"' { any character but '"' } '"' ;
    period   = yyyy [ "-" mm [ "-" dd ] ] ;

A colon in ordinary text is just text: only ``folder``, ``type``, ``taken``, ``label`` and ``like``
directly followed by a value (no space after the colon) are filters, and a weight is a number whose
colon is directly followed by a letter ("12:30 at the beach", "Note: 3 cats" and "http://x" are text).
Each like term, and the words of a term, become terms of their own with the term's sign and weight.

What cannot be understood (an unknown format, a date that does not exist, ``like:abc``, an unclosed
quote, two signs in a row, a query of excluded terms only) is reported in ``ParsedQuery.problems``,
each a sentence that names the fragment and its position, and the rest is still understood.
``str(parsed)`` is the canonical form: it parses back to the same query.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re

from gallery import formats

GRAMMAR = __doc__.split("::", 1)[1].split("\n\n", 2)[1]

HELP = (
    "Describe the picture in plain words: the whole text is one description. "
    "Combine descriptions with + and - (sunset + beach - people), weigh them (2:sunset + 0.5:beach), "
    "start from an image of the collection (like:123), "
    'match text exactly in file or folder names ("IMG_12"), and narrow with filters: '
    "folder:2019/holidays, type:heic, taken:2020-01..2021-06 (or taken:2020, taken:2020..), label:dog."
)

MIN_WEIGHT, MAX_WEIGHT = 0.01, 100.0
MAX_IMAGE_ID = 2**63 - 1
FILTER_NAMES = ("folder", "type", "taken", "label")
_FORMAT_NAMES = {name.upper() for name, _ in formats.FILTER_CHOICES}

# A token: a filter with a quoted value, a quoted keyword, or any run of non-space characters.
_TOKEN = re.compile(r'(?P<qfilter>(?ai:folder|type|taken|label):"[^"]*")|(?P<quote>"[^"]*")|(?P<word>\S+)')
_SPACE = re.compile(r"\s+")
_FILTER = re.compile(r"((?ai:folder|type|taken|label|like)):(\S.*)", re.S)
_WEIGHT = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+):(.+)", re.S)
_PERIOD = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something in the query that was not understood: where, what, and why."""

    position: int  # of the fragment in the query, from 0
    fragment: str
    reason: str

    def __str__(self) -> str:
        return f"“{self.fragment}” (at character {self.position + 1}): {self.reason}"


@dataclasses.dataclass(frozen=True)
class Term:
    """A description (``text``) or an image of the collection (``image_id``), with a signed weight."""

    weight: float = 1.0  # negative: subtracted
    text: str = ""
    image_id: int | None = None


@dataclasses.dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[Term, ...] = ()
    keywords: tuple[str, ...] = ()  # quoted text, matched exactly
    folder: str = ""
    format: str = ""  # a name of gallery.formats.FILTER_CHOICES
    taken_from: dt.date | None = None
    taken_to: dt.date | None = None  # inclusive
    labels: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = dataclasses.field(default=(), compare=False)

    @property
    def description(self) -> str | None:
        """The text when the query is one plain description (no weights, no other terms), else None."""
        if len(self.terms) == 1 and self.terms[0].weight == 1 and self.terms[0].image_id is None:
            return self.terms[0].text
        return None

    @property
    def has_filters(self) -> bool:
        return bool(self.folder or self.format or self.taken_from or self.taken_to or self.labels)

    def __str__(self) -> str:
        parts = []
        for index, term in enumerate(self.terms):
            sign = "-" if term.weight < 0 else "+"
            if index or sign == "-":
                parts.append(sign)
            parts.append(_term_text(term))
        parts.extend(f'"{keyword}"' for keyword in self.keywords)
        if self.folder:
            parts.append(f"folder:{_value(self.folder)}")
        if self.format:
            parts.append(f"type:{self.format.lower()}")
        if self.taken_from or self.taken_to:
            start = self.taken_from.isoformat() if self.taken_from else ""
            end = self.taken_to.isoformat() if self.taken_to else ""
            parts.append(f"taken:{start}..{end}")
        parts.extend(f"label:{_value(label)}" for label in self.labels)
        return " ".join(parts)


def _value(value: str) -> str:
    return f'"{value}"' if _SPACE.search(value) else value


def _special(word: str) -> bool:
    """Whether a word at the start of a term would not be read as text."""
    return word in ("+", "-") or word.startswith('"') or bool(_FILTER.fullmatch(word) or _weight(word))


def _term_text(term: Term) -> str:
    body = f"like:{term.image_id}" if term.image_id is not None else term.text
    weight = abs(term.weight)
    if weight != 1 or (term.image_id is None and _special(term.text.split(" ", 1)[0])):
        text = repr(weight)
        return f"{text[:-2] if text.endswith('.0') else text}:{body}"
    return body


def _weight(word: str) -> tuple[str, str] | None:
    match = _WEIGHT.fullmatch(word)
    if match and match.group(2)[0].isalpha():
        return match.group(1), match.group(2)
    return None


def _period(text: str, *, end: bool) -> dt.date:
    """The first (or, with ``end``, the last) day of a year, a month or a day; ValueError if none."""
    match = _PERIOD.fullmatch(text)
    if not match:
        raise ValueError(f"“{text}” is not a date: write a year (2020), a month (2020-06) or a day (2020-06-30).")
    year, month, day = (int(group) if group else None for group in match.groups())
    try:
        if month is None:
            return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
        if day is None:
            return dt.date(year, month, calendar.monthrange(year, month)[1] if end else 1)
        return dt.date(year, month, day)
    except ValueError:
        raise ValueError(f"“{text}” is not a date that exists.") from None


def _taken(value: str) -> tuple[dt.date | None, dt.date | None]:
    start, dots, end = value.partition("..")
    if dots and not start and not end:
        raise ValueError("“..” needs a date on at least one side, e.g. taken:2020.. or taken:..2021-06.")
    first = _period(start, end=False) if start else None
    last = _period(end if dots else start, end=True) if (end or not dots) else None
    if first and last and first > last:
        raise ValueError("the period ends before it starts.")
    return first, last


def parse(text: str) -> ParsedQuery:
    """The query in ``text``, with the problems found on the way (see the module's grammar)."""
    problems: list[Problem] = []
    found: dict = {"keywords": [], "labels": []}
    groups: list[dict] = []  # each: sign, weight, words [(position, word)], likes [(position, id)]
    group = None
    pending_sign: tuple[int, str] | None = None

    def problem(position: int, fragment: str, reason: str) -> None:
        problems.append(Problem(position, fragment, reason))

    def set_once(name: str, value, position: int, fragment: str) -> None:
        if name in found:
            typed = fragment.split(":", 1)[0].lower()
            problem(position, fragment, f"{typed}: is given more than once; the last one is used.")
        found[name] = value

    def add_filter(name: str, value: str, position: int, fragment: str) -> None:
        name = name.lower()
        if name == "folder":
            folder = value
            while folder != (stripped := folder.strip().strip('/"')):
                folder = stripped
            if not folder:
                problem(position, fragment, "that names no folder; write e.g. folder:2019/holidays.")
            else:
                set_once("folder", folder, position, fragment)
        elif name == "type":
            image_format = formats.find(value)
            if image_format is None or image_format.name.upper() not in _FORMAT_NAMES:
                known = ", ".join(sorted(name.lower() for name in _FORMAT_NAMES))
                problem(position, fragment, f"“{value}” is not a format searched here; known: {known}.")
            else:
                set_once("format", image_format.name, position, fragment)
        elif name == "taken":
            try:
                set_once("taken", _taken(value.strip()), position, fragment)
            except ValueError as exc:
                problem(position, fragment, str(exc))
        else:
            label = " ".join(value.split())
            if not label:
                problem(position, fragment, "that names no label; write e.g. label:dog.")
            else:
                found["labels"].append(label)

    def current() -> dict:
        nonlocal group, pending_sign
        if group is None:
            sign = pending_sign[1] if pending_sign else "+"
            group = {"sign": sign, "weight": None, "words": [], "likes": []}
            groups.append(group)
            pending_sign = None
        return group

    def add_like(value: str, position: int, fragment: str) -> None:
        if re.fullmatch(r"[0-9]+", value) and 1 <= int(value) <= MAX_IMAGE_ID:
            current()["likes"].append((position, int(value)))
        else:
            problem(position, fragment, "like: needs the number of an image of the collection, e.g. like:123.")

    position, after_sign = 0, False
    while match := _TOKEN.search(text, position):
        start, position = match.start(), match.end()
        token = match.group()
        after_sign, previous_sign = False, after_sign
        if match.lastgroup == "qfilter":
            name, value = token.split(":", 1)
            add_filter(name, value[1:-1], start, token)
            continue
        if match.lastgroup == "quote":
            keyword = token[1:-1].strip()
            if keyword:
                found["keywords"].append(keyword)
            else:
                problem(start, token, "empty quotes: put the exact text to find between them.")
            continue
        if token.startswith('"'):  # an unclosed quote glued to a word: the quote mark is dropped
            problem(start, token, "this quote is not closed; it is read as ordinary text.")
            token, start = token[1:], start + 1
            if not token:
                continue
        if token in ("+", "-"):
            if previous_sign:
                problem(start, token, f"two signs in a row (“{pending_sign[1]}” then “{token}”); “{token}” is used.")
            after_sign = True
            pending_sign = (start, token)
            group = None
            continue
        filter_match = _FILTER.fullmatch(token)
        if filter_match:
            name, value = filter_match.groups()
            if name.lower() == "like":
                add_like(value, start, token)
            else:
                if value.startswith('"'):
                    problem(start, token, "this quote is not closed; the value is read without it.")
                    value = value[1:]
                if value:
                    add_filter(name, value, start, token)
                else:
                    problem(start, token, f"{name.lower()}: needs a value.")
            continue
        here = current()
        if not here["words"] and not here["likes"] and here["weight"] is None and (weighted := _weight(token)):
            weight_text, rest = weighted
            weight = float(weight_text)
            if MIN_WEIGHT <= weight <= MAX_WEIGHT:
                here["weight"] = weight
            else:
                problem(start, token, f"a weight is between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}; 1 is used.")
                here["weight"] = 1.0
            rest_start = start + len(weight_text) + 1
            like = re.fullmatch(r"(?i)like:(\S+)", rest)
            if like:
                add_like(like.group(1), rest_start, rest)
            else:
                here["words"].append((rest_start, rest))
            continue
        here["words"].append((start, token))

    if pending_sign is not None:
        problem(pending_sign[0], pending_sign[1], f"“{pending_sign[1]}” at the end has no term after it.")

    terms: list[Term] = []
    for each in groups:
        weight = (each["weight"] or 1.0) * (-1 if each["sign"] == "-" else 1)
        parts = [(each["likes"][i][0], Term(weight, image_id=each["likes"][i][1])) for i in range(len(each["likes"]))]
        if each["words"]:
            parts.append((each["words"][0][0], Term(weight, text=" ".join(word for _, word in each["words"]))))
        terms.extend(term for _, term in sorted(parts, key=lambda part: part[0]))
    if terms and all(term.weight < 0 for term in terms):
        problem(
            len(text) - len(text.lstrip()),
            text.strip()[:40],
            "only excluded terms: add something to look for, e.g. “beach - people”.",
        )

    taken_from, taken_to = found.get("taken", (None, None))
    return ParsedQuery(
        terms=tuple(terms),
        keywords=tuple(found["keywords"]),
        folder=found.get("folder", ""),
        format=found.get("format", ""),
        taken_from=taken_from,
        taken_to=taken_to,
        labels=tuple(found["labels"]),
        problems=tuple(problems),
    )
