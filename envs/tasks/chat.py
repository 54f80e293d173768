"""Chat-style prompts from the project's own templates: writing, translation, summarization,
question answering and long-context questions (a generated document of a few thousand characters
and a question about one fact in it).

Every slot is filled from word lists below by a ``random.Random`` seeded per prompt (``seed + i``),
so the train, held-out and validation seeds of :mod:`envs.tasks.splits` give disjoint draws of the
same kinds. Nothing here comes from a benchmark's test prompts.
"""

from __future__ import annotations

import random
from collections.abc import Callable

KINDS = ("writing", "translation", "summarization", "qa", "long_context")

_TOPICS = (
    "a weekend trip to the mountains",
    "learning to cook",
    "working from home",
    "a new public library",
    "saving energy at home",
    "starting a vegetable garden",
    "adopting a rescue dog",
    "a first marathon",
    "moving to a new city",
    "a community clean-up day",
    "learning a second language",
    "a small bakery opening",
    "a school science fair",
    "cycling to work",
    "a family reunion",
    "volunteering at an animal shelter",
)
_FORMS = (
    "a short blog post",
    "a polite email to a colleague",
    "a product description",
    "a short story opening",
    "a speech for a retirement party",
    "a restaurant review",
    "a limerick",
    "a motivational message",
    "a social media post",
    "a diary entry",
    "a newsletter introduction",
    "a thank-you note",
)
_STYLES = (
    "in under 120 words",
    "with three bullet points",
    "in a friendly tone",
    "for a ten-year-old reader",
    "ending with a question",
    "in a formal tone",
    "with a catchy title",
    "in exactly four sentences",
)
_PEOPLE = (
    "My sister",
    "Our neighbour",
    "The teacher",
    "A young doctor",
    "The old fisherman",
    "My best friend",
    "The new manager",
    "Her grandfather",
    "The tourists",
    "Our team",
)
_VERBS = ("bought", "painted", "repaired", "found", "sold", "borrowed", "cleaned", "described", "forgot", "visited")
_OBJECTS = (
    "a red bicycle",
    "the kitchen table",
    "an old map of the city",
    "a basket of apples",
    "the garden fence",
    "a small wooden boat",
    "the museum downtown",
    "a book about birds",
    "the train station",
    "a blue umbrella",
)
_TIMES = (
    "last Saturday",
    "this morning",
    "before the storm",
    "after lunch",
    "during the holidays",
    "yesterday evening",
    "two weeks ago",
    "on a rainy afternoon",
)
_AFTER = (
    "Everyone was surprised.",
    "It took longer than expected.",
    "The weather was lovely.",
    "Nobody knew why.",
    "We celebrated with tea and cake.",
    "The price was very fair.",
)
_LANGUAGES = ("French", "German", "Spanish", "Italian", "Portuguese", "Dutch")
_ORGS = (
    "city council",
    "regional hospital",
    "public transport company",
    "university",
    "football club",
    "water utility",
    "local museum",
    "school board",
)
_TOWNS = ("Maplewood", "Riverton", "Eastbrook", "Hollowfield", "Stonebridge", "Lakeside", "Fairhaven", "Northgate")
_ACTIONS = (
    "build a new bridge over the river",
    "extend its opening hours",
    "replace its ageing buses",
    "open a second campus",
    "renovate the main stadium",
    "upgrade the old pipes",
    "add a children's wing",
    "hire forty more teachers",
)
_CONCERNS = (
    "the cost will rise further",
    "the work will disrupt traffic for months",
    "the money would be better spent elsewhere",
    "residents were not consulted early enough",
)
_BENEFITS = (
    "it will create local jobs",
    "it will save money in the long run",
    "it will serve a growing population",
    "it will make the service safer",
)
_MONTHS = ("March", "June", "September", "November")
_QA = (
    "What is the difference between {a} and {b}?",
    "Explain in simple terms how {c} works.",
    "What are three practical tips for {d}?",
    "Why is {c} important in everyday life?",
    "Give a short definition of {a} and one example.",
)
_CONCEPTS = (
    "weather and climate",
    "a virus and a bacterium",
    "saving and investing",
    "a lake and a reservoir",
    "speed and velocity",
    "a simile and a metaphor",
    "renting and leasing",
    "an atom and a molecule",
)
_THINGS = (
    "a refrigerator",
    "a rainbow",
    "compound interest",
    "a vaccine",
    "a solar panel",
    "a search engine",
    "the water cycle",
    "a credit card",
)
_GOALS = (
    "sleeping better",
    "studying for an exam",
    "keeping a houseplant alive",
    "running a meeting",
    "saving money on groceries",
    "writing a clear email",
    "staying focused",
    "learning to swim",
)
_FIRST = (
    "Ana",
    "Ben",
    "Chen",
    "Dara",
    "Elif",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Mia",
    "Noor",
    "Omar",
    "Paula",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
)
_LAST = (
    "Alves",
    "Brandt",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvat",
    "Ito",
    "Jansen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Suzuki",
    "Tanaka",
)
_CITIES = ("Lisbon", "Oslo", "Krakow", "Nairobi", "Osaka", "Lima", "Dublin", "Tunis", "Hanoi", "Quebec")
_DEPTS = ("design", "research", "sales", "logistics", "finance", "support", "marketing", "security")
_PROJECTS = ("Falcon", "Harbor", "Juniper", "Lantern", "Meadow", "Orbit", "Pebble", "Quartz", "Summit", "Tundra")


def _writing(r: random.Random) -> str:
    return f"Write {r.choice(_FORMS)} about {r.choice(_TOPICS)}, {r.choice(_STYLES)}."


def _sentence(r: random.Random) -> str:
    return f"{r.choice(_PEOPLE)} {r.choice(_VERBS)} {r.choice(_OBJECTS)} {r.choice(_TIMES)}."


def _translation(r: random.Random) -> str:
    return f"Translate into {r.choice(_LANGUAGES)}: {_sentence(r)} {r.choice(_AFTER)}"


def _summarization(r: random.Random) -> str:
    org, town = r.choice(_ORGS), r.choice(_TOWNS)
    text = (
        f"The {org} of {town} announced on Monday that it will {r.choice(_ACTIONS)}. The plan is expected to "
        f"cost {r.randint(3, 90)} million euros and to take {r.randint(2, 6)} years. Critics argue that "
        f"{r.choice(_CONCERNS)}, while supporters say {r.choice(_BENEFITS)}. A public meeting is planned for "
        f"{r.choice(_MONTHS)}, and a final vote is expected before the end of the year."
    )
    ask = r.choice(("Summarize in one sentence", "Summarize in two sentences", "List the key points of"))
    return f"{ask} the following news item:\n\n{text}"


def _qa(r: random.Random) -> str:
    a, b = r.choice(_CONCEPTS).split(" and ")
    return r.choice(_QA).format(a=a, b=b, c=r.choice(_THINGS), d=r.choice(_GOALS))


def _long_context(r: random.Random) -> str:
    """A staff directory of 30-70 entries (about 2,500-6,000 characters) and a question about one of them."""
    names = r.sample([f"{f} {last}" for f in _FIRST for last in _LAST], r.randint(30, 70))
    rows = [(name, r.choice(_CITIES), r.choice(_DEPTS), r.randint(2004, 2024), r.choice(_PROJECTS)) for name in names]
    lines = [
        f"{name} works from the {city} office in the {dept} team, joined in {year} and leads project {project}."
        for name, city, dept, year, project in rows
    ]
    name, city, dept, year, project = r.choice(rows)
    question = r.choice(
        (
            f"Which project does {name} lead?",
            f"In which year did {name} join?",
            f"Which office does {name} work from, and in which team?",
        )
    )
    return (
        "Read the staff directory below and answer the question.\n\n" + "\n".join(lines) + f"\n\nQuestion: {question}"
    )


_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "writing": _writing,
    "translation": _translation,
    "summarization": _summarization,
    "qa": _qa,
    "long_context": _long_context,
}


def chat_prompt(kind: str, seed: int) -> str:
    """One templated prompt of ``kind`` (one of :data:`KINDS`), drawn with ``seed``."""
    return _MAKERS[kind](random.Random(seed))
