"""Word lists of the rule-based entity extractor (:mod:`.entities`), lower case."""

from __future__ import annotations


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``."""
    return frozenset(text.split())


TITLES = """
emperor empress king queen pope dr dr. mr mr. mrs mrs. ms ms. prof prof. professor
president sir saint st. prince princess general senator lord lady duke duchess
chancellor bishop archbishop cardinal governor consul caesar pharaoh tsar czar sultan
mayor minister captain colonel judge
"""

PLURAL_TITLES = """
emperors empresses kings queens popes presidents princes princesses generals senators
leaders rulers philosophers scientists writers authors poets painters composers consuls
pharaohs tsars sultans people figures
"""

PLACE_WORDS = """
empire kingdom republic river sea ocean island islands mountains mountain valley lake
city province county state desert peninsula gulf bay coast strait
"""

ORG_WORDS = """
inc inc. corp corp. corporation company co. ltd ltd. llc university institute college
school council church party army bank association foundation ministry department agency
committee society academy group laboratory laboratories organization organisation union
federation
"""

COMMON = """
the a an in on at of for to from by with and or but if when while as after before this
that these those there here it its he she they we you i his her their our my however
although though because since during under over between among about into many most some
all any each every no not one two three first second then thus so also yet still later
today yesterday tomorrow what which who whom whose where why how despite until unlike
like such both either neither other another bc bce ad ce
"""

PLACES = """
afghanistan albania algeria argentina armenia australia austria bangladesh belgium
bolivia brazil bulgaria cambodia cameroon canada chile china colombia croatia cuba
cyprus denmark egypt england estonia ethiopia finland france georgia germany ghana
greece hungary iceland india indonesia iran iraq ireland israel italy jamaica japan
jordan kenya korea latvia lebanon libya lithuania luxembourg malaysia mexico morocco
nepal netherlands nigeria norway pakistan peru philippines poland portugal romania
russia scotland serbia singapore slovakia slovenia spain sudan sweden switzerland syria
taiwan thailand tunisia turkey uganda ukraine uruguay venezuela vietnam wales yemen
africa asia europe antarctica america oceania gaul britain britannia judea mesopotamia
persia carthage macedonia dacia germania hispania anatolia byzantium rome paris london
berlin madrid lisbon vienna prague budapest warsaw moscow athens istanbul constantinople
cairo alexandria jerusalem baghdad tehran delhi mumbai beijing shanghai tokyo kyoto
seoul bangkok jakarta manila sydney melbourne toronto montreal vancouver chicago boston
washington houston dallas miami seattle philadelphia brussels amsterdam copenhagen
stockholm oslo helsinki dublin edinburgh milan naples venice florence barcelona munich
hamburg zurich geneva lyon marseille nairobi lagos johannesburg dubai riyadh karachi
lahore dhaka
"""

#: Places of several words, comma-separated.
PLACE_PHRASES = """
new york, los angeles, san francisco, hong kong, mexico city, rio de janeiro, sao paulo,
buenos aires, united states, united kingdom, south africa, new zealand, saudi arabia,
north america, south america, soviet union, roman empire
"""


def phrases(text: str) -> frozenset[str]:
    """The comma-separated phrases of ``text``."""
    return frozenset(" ".join(p.split()) for p in text.split(",") if p.strip())
