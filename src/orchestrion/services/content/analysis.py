"""Analysis of a text: pure functions, no database, no network (:func:`analyze`).

- ``language``: langdetect (seeded, so the same text always gives the same answer) on
  the first :data:`LANGUAGE_SAMPLE` characters; ``"und"`` when there is nothing to go on.
- ``keywords``: YAKE (phrases of up to three words). YAKE's score is "lower is better",
  unbounded, and a product over a phrase's words, so phrases always beat single words;
  it is taken to the power ``1 / words`` (phrases and words then compare) and shown as
  ``1 / (1 + 10 * s)``: in (0, 1], higher is better.
- ``entities``: rule-based (:mod:`.entities`), no statistical model.
- ``summary``: extractive: the sentences most similar to the rest (TF-IDF cosine
  centrality, as LexRank's degree), in their original order.
- ``readability``: Flesch reading ease and Flesch-Kincaid grade, from textstat's word and
  sentence counts and pyphen's hyphenation for syllables. The formulas are English ones.
- ``difficulty``: from the grade: up to 8 ``beginner``, up to 12 ``intermediate``,
  above ``advanced``.
- ``concepts``: the best multi-word keywords, those the text repeats first, without ones
  another concept contains and without phrases ending in a past-tense verb (``-ed``).

Long texts are analysed on their first :data:`ANALYSIS_SAMPLE` characters (the word
count covers all of it): keyword extraction grows faster than linearly.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Any, Final

import numpy as np

from orchestrion.services.content.entities import extract_entities, split_sentences

LANGUAGE_SAMPLE: Final = 10_000
ANALYSIS_SAMPLE: Final = 200_000
MAX_KEYWORDS: Final = 10
MAX_CONCEPTS: Final = 8
SUMMARY_SENTENCES: Final = 3
MAX_SUMMARY_CANDIDATES: Final = 400
BEGINNER_MAX_GRADE: Final = 8.0
INTERMEDIATE_MAX_GRADE: Final = 12.0
_WORD: Final = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*|\d+(?:[.,]\d+)*")
_LETTERS: Final = re.compile(r"[^\W\d_]")
# Languages YAKE ships stop words for (ISO 639-1); others use English stop words.
_YAKE_LANGUAGES: Final = frozenset(
    [
        "ar",
        "bg",
        "br",
        "cz",
        "da",
        "de",
        "el",
        "en",
        "es",
        "et",
        "fa",
        "fi",
        "fr",
        "hi",
        "hr",
        "hu",
        "hy",
        "id",
        "it",
        "ja",
        "lt",
        "lv",
        "nl",
        "no",
        "pl",
        "pt",
        "ro",
        "ru",
        "sk",
        "sl",
        "sv",
        "tr",
        "uk",
        "zh",
    ]
)


def word_count(text: str) -> int:
    """Words (runs of letters, or numbers) in ``text``."""
    return sum(1 for _ in _WORD.finditer(text))


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language (``zh-cn`` style for Chinese), or ``und``."""
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0
    sample = text[:LANGUAGE_SAMPLE]
    if len(_LETTERS.findall(sample)) < 3:
        return "und"
    try:
        return str(detect(sample))
    except LangDetectException:
        return "und"


def normalised(term: str, yake_score: float) -> float:
    """YAKE's score of ``term`` made comparable across phrase lengths (lower is better)."""
    value: float = max(0.0, float(yake_score)) ** (1.0 / max(1, len(term.split())))
    return value


def keyword_score(value: float) -> float:
    """A normalised YAKE score as "higher is better" in (0, 1]."""
    return round(1.0 / (1.0 + 10.0 * value), 6)


@lru_cache(maxsize=64)
def _extractor(language: str, size: int, top: int) -> Any:
    import yake

    return yake.KeywordExtractor(lan=language, n=size, top=top, dedupLim=0.8)


def _yake(text: str, language: str, *, size: int, top: int) -> list[tuple[str, float]]:
    """``(term, normalised score)``, best first."""
    if not _LETTERS.search(text):
        return []
    lang = language.split("-")[0] if language.split("-")[0] in _YAKE_LANGUAGES else "en"
    try:
        found = _extractor(lang, size, top).extract_keywords(text)
    except Exception:  # YAKE fails on degenerate input (one word, only punctuation)
        return []
    scored = [(str(term), normalised(str(term), score)) for term, score in found]
    return sorted(scored, key=lambda item: item[1])


def keywords(text: str, language: str = "en", *, top: int = MAX_KEYWORDS) -> list[dict[str, Any]]:
    """The ``top`` keywords of ``text``, best first, as ``{"term", "score"}``."""
    found = _yake(text, language, size=3, top=top * 4)[:top]
    return [{"term": term, "score": keyword_score(score)} for term, score in found]


def concepts(text: str, language: str = "en", *, top: int = MAX_CONCEPTS) -> list[str]:
    """Key multi-word phrases, best first, none contained in a better one; single
    keywords fill in when a text has too few phrases."""
    found = _yake(text, language, size=3, top=top * 5)
    lowered_text = text.lower()
    phrases = [
        term for term, _ in found if " " in term and not term.split()[-1].lower().endswith("ed")
    ]
    # Phrases the text repeats are concepts; one-off word sequences seldom are.
    phrases.sort(key=lambda term: lowered_text.count(term.lower()) < 2)
    chosen: list[str] = []
    seen: list[str] = []

    def add(term: str) -> None:
        lowered = term.lower()
        if any(lowered in other or other in lowered for other in seen):
            return
        chosen.append(term)
        seen.append(lowered)

    for term in phrases:
        if len(chosen) < top:
            add(term)
    for term, _ in found:
        if len(chosen) >= min(top, 5):
            break
        add(term)
    return chosen


def _syllables(word: str, hyphenator: Any) -> int:
    return max(1, len(hyphenator.positions(word)) + 1)


@lru_cache(maxsize=1)
def _hyphenator() -> Any:
    import pyphen

    return pyphen.Pyphen(lang="en_US")


def readability(text: str) -> dict[str, float]:
    """Flesch reading ease and Flesch-Kincaid grade level (0 for a text without words)."""
    import textstat

    words = [w for w in _WORD.findall(text) if _LETTERS.search(w)]
    if not words:
        return {"flesch_reading_ease": 0.0, "grade_level": 0.0}
    sentences = max(1, int(textstat.sentence_count(text)))
    hyphenator = _hyphenator()
    syllables = sum(_syllables(w.lower(), hyphenator) for w in words)
    per_sentence = len(words) / sentences
    per_word = syllables / len(words)
    ease = 206.835 - 1.015 * per_sentence - 84.6 * per_word
    grade = 0.39 * per_sentence + 11.8 * per_word - 15.59
    return {"flesch_reading_ease": round(ease, 2), "grade_level": round(max(0.0, grade), 2)}


def difficulty(grade_level: float) -> str:
    """``beginner`` up to grade 8, ``intermediate`` up to 12, ``advanced`` above."""
    if grade_level <= BEGINNER_MAX_GRADE:
        return "beginner"
    if grade_level <= INTERMEDIATE_MAX_GRADE:
        return "intermediate"
    return "advanced"


def summarize(text: str, *, sentences: int = SUMMARY_SENTENCES) -> str:
    """The ``sentences`` most central sentences of ``text``, in their original order."""
    spans = [s for s in split_sentences(text) if _WORD.search(text[s[0] : s[1]])]
    candidates = [" ".join(text[a:b].split()) for a, b in spans[:MAX_SUMMARY_CANDIDATES]]
    if len(candidates) <= sentences:
        return " ".join(candidates)
    bags = [Counter(w.lower() for w in _WORD.findall(s)) for s in candidates]
    frequency = Counter(term for bag in bags for term in bag)
    vocabulary = {term: i for i, term in enumerate(frequency)}
    matrix = np.zeros((len(bags), len(vocabulary)), dtype=np.float64)
    total = len(bags)
    for row, bag in enumerate(bags):
        for term, count in bag.items():
            idf = math.log((1 + total) / (1 + frequency[term])) + 1.0
            matrix[row, vocabulary[term]] = (1 + math.log(count)) * idf
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    unit = matrix / norms[:, None]
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, 0.0)
    # Centrality, lightly favouring early sentences (ties go to the opening).
    centrality = similarity.sum(axis=1) + 1e-6 * (total - np.arange(total))
    best = sorted(np.argsort(-centrality, kind="stable")[:sentences].tolist())
    return " ".join(candidates[i] for i in best)


def analyze(text: str) -> dict[str, Any]:
    """The ``analysis`` object of API.md for ``text``."""
    sample = text[:ANALYSIS_SAMPLE]
    language = detect_language(sample)
    scores = readability(sample)
    return {
        "language": language,
        "word_count": word_count(text),
        "keywords": keywords(sample, language),
        "entities": extract_entities(sample),
        "summary": summarize(sample),
        "readability": scores,
        "difficulty": difficulty(scores["grade_level"]),
        "concepts": concepts(sample, language),
    }
