"""Keyword search: tokens, the terms a node is indexed under, and BM25 ranking.

The index lives in plain tables (``kg_terms``), the same on SQLite and PostgreSQL, so
both rank identically. A node's terms come from its name and its text; a name token
counts ``NAME_BOOST`` times, a light form of BM25F: a query word in the name outranks
the same word in a paragraph.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrion.services.knowledge.models import TERM_LENGTH

NAME_BOOST = 3
K1 = 1.2
B = 0.75
#: Query words beyond this many are ignored (a query is a few words, not a document).
MAX_QUERY_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)


def tokens(value: str) -> list[str]:
    """Lower-cased words of ``value`` (letters, digits, underscore), cut to the term length."""
    return [word[:TERM_LENGTH] for word in _WORD.findall(value.casefold())]


def index_terms(name: str, text: str) -> tuple[dict[str, int], int]:
    """The weighted term counts of a node and its weighted length."""
    counts: Counter[str] = Counter()
    name_tokens = tokens(name)
    text_tokens = tokens(text)
    for token in name_tokens:
        counts[token] += NAME_BOOST
    counts.update(text_tokens)
    return dict(counts), NAME_BOOST * len(name_tokens) + len(text_tokens)


def query_terms(query: str) -> list[str]:
    """The distinct words of a query, in order."""
    return list(dict.fromkeys(tokens(query)))[:MAX_QUERY_TERMS]


@dataclass(frozen=True)
class Posting:
    """``term`` occurs ``tf`` times (weighted) in node ``node_id`` of length ``length``."""

    node_id: str
    term: str
    tf: int
    length: int


def bm25(postings: Iterable[Posting], *, documents: int, average_length: float) -> dict[str, float]:
    """Okapi BM25 score of every node in ``postings`` (k1 = 1.2, b = 0.75)."""
    by_term: dict[str, list[Posting]] = {}
    for posting in postings:
        by_term.setdefault(posting.term, []).append(posting)
    scores: dict[str, float] = {}
    average = average_length or 1.0
    for found in by_term.values():
        df = len(found)
        idf = math.log(1 + (documents - df + 0.5) / (df + 0.5))
        for p in found:
            norm = K1 * (1 - B + B * p.length / average)
            scores[p.node_id] = scores.get(p.node_id, 0.0) + idf * p.tf * (K1 + 1) / (p.tf + norm)
    return scores


def ranked(scores: Mapping[str, float], names: Mapping[str, str], limit: int) -> list[str]:
    """Node ids by score, then name, then id (a stable order for equal scores)."""
    return sorted(scores, key=lambda node: (-scores[node], names.get(node, ""), node))[:limit]
