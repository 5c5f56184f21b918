"""Analysis, entities and chunking as pure functions."""

from __future__ import annotations

import random

import pytest

from orchestrion.services.content.analysis import analyze, difficulty, keyword_score
from orchestrion.services.content.chunking import chunk_text

PHOTOSYNTHESIS = (
    "Photosynthesis is the process by which green plants, algae and some bacteria convert "
    "light energy into chemical energy. During photosynthesis, chlorophyll in the "
    "chloroplasts absorbs sunlight, and the plant uses that energy to turn carbon dioxide "
    "and water into glucose. Oxygen is released as a by-product of photosynthesis. The "
    "light-dependent reactions take place in the thylakoid membranes, while the Calvin "
    "cycle fixes carbon in the stroma. Without photosynthesis, most life on Earth could "
    "not exist."
)
EMPERORS = (
    "The Roman Empire was ruled by emperors such as Augustus, Tiberius, Hadrian and Marcus "
    "Aurelius. Augustus became the first emperor in 27 BC after the death of Julius Caesar. "
    "Tiberius succeeded him in AD 14. Hadrian built a wall across Britain. Marcus Aurelius "
    "wrote the Meditations while campaigning near the Danube. Emperor Trajan expanded the "
    "empire, and the emperors governed from Rome."
)
FRENCH = (
    "La photosynthèse est le processus par lequel les plantes vertes transforment la "
    "lumière du soleil en énergie chimique. Elle se déroule dans les chloroplastes."
)


def test_photosynthesis_keywords() -> None:
    analysis = analyze(PHOTOSYNTHESIS)
    top = [k["term"].lower() for k in analysis["keywords"][:3]]
    assert "photosynthesis" in top
    scores = [k["score"] for k in analysis["keywords"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)
    assert analysis["language"] == "en"
    assert analysis["word_count"] == len(PHOTOSYNTHESIS.split())
    assert analysis["summary"].startswith("Photosynthesis is the process")
    assert analysis["concepts"]
    assert all(" " in c for c in analysis["concepts"][:3])


def test_emperors_are_people() -> None:
    entities = {e["text"]: e["label"] for e in analyze(EMPERORS)["entities"]}
    for name in ("Augustus", "Tiberius", "Hadrian", "Marcus Aurelius", "Trajan"):
        assert entities.get(name) == "PERSON", (name, entities)
    assert entities["Rome"] == "PLACE"
    assert entities["Britain"] == "PLACE"
    assert entities["27 BC"] == "DATE"
    assert entities["AD 14"] == "DATE"
    assert "The" not in entities


def test_orgs_dates_and_sentence_starts() -> None:
    text = (
        "Yesterday the board of Acme Corp. met in Paris. She studied at the University of "
        "Bologna until March 2020. Dr. Alice Martin joined on 12 March 2021. Nothing else."
    )
    entities = {e["text"]: e["label"] for e in analyze(text)["entities"]}
    assert entities["Acme Corp"] == "ORG"
    assert entities["University of Bologna"] == "ORG"
    assert entities["Paris"] == "PLACE"
    assert entities["Alice Martin"] == "PERSON"
    assert entities["March 2020"] == "DATE"
    assert entities["12 March 2021"] == "DATE"
    assert "March 2021" not in entities
    for opener in ("Yesterday", "She", "Nothing"):
        assert opener not in entities


def test_french_and_empty() -> None:
    assert analyze(FRENCH)["language"] == "fr"
    empty = analyze("")
    assert empty["language"] == "und"
    assert empty["keywords"] == []
    assert empty["summary"] == ""
    assert analyze("!!! ??? 123")["word_count"] == 1


def test_difficulty_thresholds_and_scores() -> None:
    assert [difficulty(g) for g in (3, 8, 8.5, 12, 12.1)] == [
        "beginner", "beginner", "intermediate", "intermediate", "advanced",
    ]  # fmt: skip
    assert keyword_score(0.0) == 1.0
    assert keyword_score(0.1) > keyword_score(0.2)
    easy = analyze("The cat sat. The dog ran. We had fun.")
    hard = analyze(
        "Notwithstanding considerable methodological heterogeneity, epidemiological "
        "investigations consistently demonstrate statistically significant associations."
    )
    assert easy["difficulty"] == "beginner"
    assert hard["difficulty"] == "advanced"
    assert easy["readability"]["flesch_reading_ease"] > hard["readability"]["flesch_reading_ease"]


@pytest.mark.parametrize("seed", range(5))
def test_chunks_have_exact_offsets(seed: int) -> None:
    rng = random.Random(seed)
    words = ["alpha", "beta.", "gamma\n\n", "delta!", "x" * rng.randrange(1, 400), "é\n"]
    text = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 2000)))
    size, overlap = rng.choice([(100, 20), (300, 50), (1000, 150)])
    chunks = chunk_text(text, size=size, overlap=overlap)
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text
        assert 0 < len(chunk.text) <= size
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts))
    # Together the chunks cover every non-blank character.
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunks_break_at_paragraphs_and_sentences() -> None:
    text = ("One sentence here. " * 10).strip() + "\n\n" + ("Another one. " * 10).strip()
    chunks = chunk_text(text, size=250, overlap=0)
    assert chunks[0].text.endswith("One sentence here.")
    assert chunks[1].text.startswith("Another one.")
    assert chunk_text("   \n ", size=100, overlap=10) == []
