"""Named entities by rules, not by a statistical model (none ships offline).

A candidate is a run of capitalised words (``Marcus Aurelius``, ``University of
Bologna``). A run that opens a sentence is kept only when the same words also appear
elsewhere mid-sentence, or a rule below names it, since any sentence starts with a
capital. Labels, strongest evidence first:

- ``PERSON``: after a title (Emperor, King, Queen, Pope, Dr., Mr., President...), in a
  list introduced by a plural title (``emperors such as A, B and C``), or followed by
  a verb of a life (``reigned``, ``was born``, ``died``); a name once known as a person
  is one everywhere, and so are its last word and the other items of its list.
- ``PLACE``: a small gazetteer of countries, continents and large cities, words like
  Empire, River, Sea in the run, or after ``in``/``at``/``from``/``near``/``to``.
- ``ORG``: words like Inc., Corp., University, Company, Institute in the run.
- ``DATE``: years with an era (``27 BC``, ``AD 14``), dates (``12 March 2020``,
  ``March 12, 2020``, ``2020-03-12``), months with a year, and years after ``in``.
- ``MISC``: other runs of two or more capitalised words.

It is tuned for English; it misses lower-case names and mislabels what no rule covers.
"""

from __future__ import annotations

import re
from typing import Final

from orchestrion.services.content import gazetteer

MAX_ENTITIES: Final = 50
_SENTENCE_END: Final = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*[-*#\d])"
)
_TITLES: Final = gazetteer.words(gazetteer.TITLES)
_PLURAL_TITLES: Final = gazetteer.words(gazetteer.PLURAL_TITLES)
_LIST_CUES: Final = ("such as", "including", "like", "namely", "notably")
_LIFE_VERBS: Final = re.compile(
    r"^\s*(?:,\s*)?(?:\(\d{1,4}\s*[-\u2013]\s*\d{1,4}\)\s*)?"
    r"(reigned|ruled|was born|died|succeeded|wrote|said|became|married|founded|defeated"
    r"|conquered|was emperor|was king|was queen)\b"
)
_PLACE_WORDS: Final = gazetteer.words(gazetteer.PLACE_WORDS)
_ORG_WORDS: Final = gazetteer.words(gazetteer.ORG_WORDS)
_PLACES: Final = gazetteer.words(gazetteer.PLACES) | gazetteer.phrases(gazetteer.PLACE_PHRASES)
_PLACE_CUES: Final = frozenset({"in", "at", "from", "near", "to", "across", "throughout"})
# Words that open sentences without naming anything.
_COMMON: Final = gazetteer.words(gazetteer.COMMON)
_MONTHS: Final = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
_DATES: Final = (
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)? (?:{_MONTHS}),? \d{{1,4}}\b"),
    re.compile(rf"\b(?:{_MONTHS}) \d{{1,2}}(?:st|nd|rd|th)?,? \d{{1,4}}\b"),
    re.compile(rf"\b(?:{_MONTHS}) \d{{4}}\b"),
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
    re.compile(r"\b\d{1,4} (?:BC|BCE|AD|CE)\b|\b(?:AD|CE) \d{1,4}\b"),
    re.compile(r"(?<=\b[Ii]n )\d{4}\b(?!\s*(?:BC|BCE|AD|CE))"),
    re.compile(r"\b\d{1,2}(?:st|nd|rd|th) century(?: (?:BC|BCE|AD|CE))?\b"),
)
_TOKEN: Final = re.compile(
    r"(?:Dr|Mr|Mrs|Ms|Prof|St|Gen|Sen|Rev)\.|[A-Z][\w'\u2019.-]*[\w]|[A-Z]\.?|[a-z]+|\S"
)
_CAPITALISED: Final = re.compile(r"^[A-Z][a-zA-Z'\u2019-]*\.?$")
_CONNECTORS: Final = frozenset(
    {"of", "de", "da", "di", "del", "von", "van", "der", "la", "le", "the"}
)


_ABBREVIATIONS: Final = gazetteer.words(
    "dr mr mrs ms prof st sr jr inc corp ltd co vs etc eg ie no gen sen rev fig mt"
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (ends at ., !, ? or a blank line;
    not after an abbreviation such as ``Dr.``)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = re.search(r"(\w+)\.\W*$", text[max(start, match.start() - 12) : match.start()])
        if before is not None and before.group(1).lower() in _ABBREVIATIONS:
            continue
        if text[start : match.start()].strip():
            spans.append(_trim(text, start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append(_trim(text, start, len(text)))
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


class _Run:
    """A run of capitalised words in one sentence."""

    def __init__(self, words: list[str], at_start: bool, before: str, after: str) -> None:
        self.words = words
        self.at_start = at_start
        self.before = before  # the sentence's text before the run
        self.after = after  # and after it

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _runs(sentence: str) -> list[_Run]:
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(sentence)]
    runs: list[_Run] = []
    i = 0
    while i < len(tokens):
        word = tokens[i][0]
        if not _CAPITALISED.match(word):
            i += 1
            continue
        j = i + 1
        while j < len(tokens):
            if _CAPITALISED.match(tokens[j][0]):
                j += 1
            elif (
                tokens[j][0] in _CONNECTORS
                and j + 1 < len(tokens)
                and _CAPITALISED.match(tokens[j + 1][0])
            ):
                j += 2
            else:
                break
        words = [t[0].rstrip(".") if t[0].lower() not in _ORG_WORDS else t[0] for t in tokens[i:j]]
        runs.append(_Run(words, i == 0, sentence[: tokens[i][1]], sentence[tokens[j - 1][2] :]))
        i = j
    return runs


def _strip_run(run: _Run) -> tuple[str | None, list[str]]:
    """The run without leading common words and titles; the title it had, if any."""
    title: str | None = None
    words = list(run.words)
    while words and (words[0].lower() in _COMMON or words[0].lower().rstrip(".") in _TITLES
                     or words[0].lower() in _TITLES):  # fmt: skip
        if words[0].lower() in _TITLES or words[0].lower().rstrip(".") in _TITLES:
            title = words[0]
        words.pop(0)
        run.at_start = False if title else run.at_start
    while words and words[-1].lower() in _CONNECTORS:
        words.pop()
    return title, words


def _previous_word(before: str) -> str:
    found = [w.lower() for w in re.findall(r"[A-Za-z]+", before[-24:])]
    if found and found[-1] == "the":
        found.pop()
    return found[-1] if found else ""


def _list_after_plural_title(before: str) -> bool:
    lowered = before.lower()
    for cue in _LIST_CUES:
        at = lowered.rfind(cue)
        if at == -1:
            continue
        head = re.findall(r"[a-z]+", lowered[:at])
        between = lowered[at + len(cue) :]
        if head and head[-1] in _PLURAL_TITLES and not re.search(r"[.;:]", between):
            return True
    return False


def _label(name: str, run: _Run, title: str | None, persons: set[str]) -> str:
    lowered = name.lower()
    words = {w.lower() for w in name.split()}
    if title is not None or name in persons:
        return "PERSON"
    if lowered in _PLACES:
        return "PLACE"
    if words & _ORG_WORDS:
        return "ORG"
    if words & _PLACE_WORDS:
        return "PLACE"
    if _list_after_plural_title(run.before) or _LIFE_VERBS.match(run.after):
        return "PERSON"
    if _previous_word(run.before) in _PLACE_CUES and not run.at_start:
        return "PLACE"
    return "MISC" if len(name.split()) > 1 else ""


def extract_entities(text: str) -> list[dict[str, str]]:
    """``{"text", "label"}`` for each entity, once, in order of first appearance."""
    found: list[tuple[int, str, str]] = []
    dates = sorted(
        ((m.start(), m.end()) for pattern in _DATES for m in pattern.finditer(text)),
        key=lambda span: (span[0], -span[1]),
    )
    reach = -1
    for begin, end in dates:
        if end > reach:  # a date inside a longer one (``March 2021`` in ``12 March 2021``)
            if begin >= reach:
                found.append((begin, text[begin:end], "DATE"))
            reach = max(reach, end)
    candidates: list[tuple[int, str, _Run, str | None]] = []
    for start, end in split_sentences(text):
        sentence = text[start:end]
        for run in _runs(sentence):
            title, words = _strip_run(run)
            if not words or all(w.lower() in _COMMON | _TITLES for w in words):
                continue
            if any(re.fullmatch(_MONTHS, w) for w in words):
                continue
            candidates.append((start + len(run.before), " ".join(words), run, title))
    mid_sentence = {name for _, name, run, title in candidates if not run.at_start or title}
    counts: dict[str, int] = {}
    for _, name, _, _ in candidates:
        counts[name] = counts.get(name, 0) + 1
    persons: set[str] = set()
    labels: dict[str, str] = {}
    # Two passes: a person found anywhere makes the same name a person everywhere.
    for _ in range(2):
        for _, name, run, title in candidates:
            label = _label(name, run, title, persons)
            if label == "PERSON":
                persons.add(name)
                if len(name.split()) > 1:
                    persons.add(name.split()[-1])
            if label and (labels.get(name) in (None, "", "MISC") or label == "PERSON"):
                labels[name] = label
        _spread_over_lists(text, labels, persons)
    for at, name, run, _ in candidates:
        label = labels.get(name, "")
        known = name.lower() in _PLACES or label in ("PERSON", "ORG", "PLACE")
        if run.at_start and name not in mid_sentence and counts[name] < 2 and not known:
            continue
        if label:
            found.append((at, name, label))
    seen: set[str] = set()
    entities: list[dict[str, str]] = []
    for _, name, label in sorted(found, key=lambda item: item[0]):
        if name in seen:
            continue
        seen.add(name)
        entities.append({"text": name, "label": label})
        if len(entities) >= MAX_ENTITIES:
            break
    return entities


def _spread_over_lists(text: str, labels: dict[str, str], persons: set[str]) -> None:
    """Capitalised names listed with a person (``A, B and C``) are people too."""
    item = r"[A-Z][a-z]+(?: [A-Z][a-z]+)*"
    for match in re.finditer(rf"{item}(?:, {item})+,? (?:and|or) {item}", text):
        names = re.split(r",\s*|\s+(?:and|or)\s+", match.group())
        names = [n.strip() for n in names if n.strip()]
        if any(n in persons for n in names):
            for name in names:
                if labels.get(name, "") in ("", "MISC"):
                    labels[name] = "PERSON"
                    persons.add(name)
