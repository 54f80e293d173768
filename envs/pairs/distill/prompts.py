"""Distillation prompts: reasoning-gym problems and templated instructions, seeded per source."""

from __future__ import annotations

import random
from collections.abc import Callable

from envs.pairs.distill.config import HELDOUT_SEED, HELDOUT_SOURCES, TRAIN_SEED_BASE, TRAIN_SOURCES

_TOPICS = [
    "photosynthesis",
    "gravity",
    "the water cycle",
    "inflation",
    "machine learning",
    "the immune system",
    "volcanoes",
    "the internet",
    "climate change",
    "black holes",
    "democracy",
    "recycling",
    "electricity",
    "the French Revolution",
    "vaccines",
    "solar energy",
    "the stock market",
    "DNA",
    "earthquakes",
    "cloud computing",
    "the moon landing",
    "honeybees",
    "plate tectonics",
    "compound interest",
    "the Roman Empire",
    "sleep",
    "nutrition",
    "renewable energy",
    "rainbows",
    "tides",
]
_THINGS = [
    "the ocean",
    "a rainy day",
    "autumn leaves",
    "a lighthouse",
    "friendship",
    "a mountain",
    "the city at night",
    "a cup of coffee",
    "a garden",
    "the stars",
    "an old library",
    "a train journey",
    "snow",
    "a cat",
    "the first day of school",
]
_ACTIVITIES = [
    "learning a new language",
    "staying productive",
    "saving money",
    "running",
    "public speaking",
    "cooking at home",
    "studying for exams",
    "gardening",
    "writing a resume",
    "managing stress",
    "traveling on a budget",
    "learning to code",
    "making friends",
    "keeping a plant alive",
    "reading more",
]
_PAIRS = [
    ("a virus", "a bacterium"),
    ("weather", "climate"),
    ("a lake", "a sea"),
    ("RAM", "storage"),
    ("a simile", "a metaphor"),
    ("speed", "velocity"),
    ("a frog", "a toad"),
    ("a crocodile", "an alligator"),
    ("baking soda", "baking powder"),
    ("an asteroid", "a comet"),
    ("a republic", "a monarchy"),
    ("mass", "weight"),
]
_COUNTRIES = [
    "France",
    "Japan",
    "Brazil",
    "Canada",
    "Egypt",
    "Italy",
    "Kenya",
    "Germany",
    "Australia",
    "Mexico",
    "India",
    "Spain",
    "Norway",
    "Peru",
    "Vietnam",
]
_CHARACTERS = [
    "a young robot",
    "a curious fox",
    "an old fisherman",
    "a lost astronaut",
    "a brave knight",
    "a shy dragon",
    "a clever student",
    "a talking tree",
]
_EVENTS = [
    "finds a hidden door",
    "learns to fly",
    "makes an unexpected friend",
    "loses something precious",
    "discovers a secret map",
    "wins a strange contest",
]
_CODE_TASKS = [
    "reverses a string",
    "checks whether a number is prime",
    "returns the largest element of a list",
    "counts the vowels in a word",
    "computes the factorial of n",
    "removes duplicates from a list",
    "converts Celsius to Fahrenheit",
    "sums the even numbers in a list",
]
_PEOPLE = [
    "my teacher",
    "a neighbor",
    "my grandmother",
    "a colleague",
    "my best friend",
    "the team",
    "a customer",
    "my coach",
]
_FAVORS = [
    "helping me move",
    "a birthday gift",
    "their advice",
    "a great dinner",
    "covering my shift",
    "a book recommendation",
    "their patience",
    "the flowers",
]
_PRODUCTS = [
    "a reusable water bottle",
    "noise-cancelling headphones",
    "a standing desk",
    "a smart watch",
    "a backpack",
    "an electric kettle",
    "a yoga mat",
    "a desk lamp",
    "running shoes",
    "a board game",
]
_CITIES = [
    "Paris",
    "Tokyo",
    "New York",
    "Rome",
    "Barcelona",
    "London",
    "Cairo",
    "Sydney",
    "Lisbon",
    "Istanbul",
    "Prague",
    "Kyoto",
]
_TEMPLATES: list[tuple[str, tuple[list, ...]]] = [
    ("What should a beginner know about {}?", (_ACTIVITIES,)),
    ("What are common mistakes people make when {}?", (_ACTIVITIES,)),
    ("Write a haiku about {}.", (_THINGS,)),
    ("Give two examples of how {} affects daily life.", (_TOPICS,)),
    ("Explain step by step how {} works.", (_TOPICS,)),
    ("Write a thank-you note to {} for {}.", (_PEOPLE, _FAVORS)),
    ("Write a short product description for {}.", (_PRODUCTS,)),
    ("Plan a one-day trip to {}.", (_CITIES,)),
    ("What is {} famous for?", (_CITIES,)),
    ("Explain {} in simple terms.", (_TOPICS,)),
    ("What is {}? Answer in two sentences.", (_TOPICS,)),
    ("Write a short poem about {}.", (_THINGS,)),
    ("Give me three tips for {}.", (_ACTIVITIES,)),
    ("What are the benefits of {}?", (_ACTIVITIES,)),
    ("What is the difference between {} and {}?", (_PAIRS,)),
    ("What is the capital of {}?", (_COUNTRIES,)),
    ("Tell me an interesting fact about {}.", (_COUNTRIES,)),
    ("Write a short story about {} who {}.", (_CHARACTERS, _EVENTS)),
    ("Write a Python function that {}.", (_CODE_TASKS,)),
    ("Summarize why {} matters, in one paragraph.", (_TOPICS,)),
    ("Describe {} to a five-year-old.", (_THINGS,)),
]


def instruction_prompts(n: int, seed: int) -> list[str]:
    """``n`` instruction-style prompts drawn from fixed templates with a seeded RNG."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        template, slots = rng.choice(_TEMPLATES)
        values: list[str] = []
        for slot in slots:
            choice = rng.choice(slot)
            values.extend(choice if isinstance(choice, tuple) else (choice,))
        prompts.append(template.format(*values))
    return prompts


def source_prompts(name: str, n: int, seed: int) -> list[str]:
    """``n`` prompts from one source: a reasoning-gym generator or ``instructions``."""
    if name == "instructions":
        return instruction_prompts(n, seed)
    import reasoning_gym

    return [item["question"] for item in reasoning_gym.create_dataset(name, size=n, seed=seed)]


def prompt_plan(sources: dict[str, int], seed_of: Callable[[int], int], scale: float = 1.0) -> list[dict]:
    """Which prompts come from where: one entry per source with its size and seed."""
    return [
        {"source": name, "size": max(1, round(n * scale)), "seed": seed_of(i)}
        for i, (name, n) in enumerate(sources.items())
    ]


def collect_prompts(plan: list[dict], exclude: set[str] | None = None) -> list[tuple[str, str]]:
    """(source, prompt) pairs for a plan, de-duplicated and without the excluded prompts."""
    seen = set(exclude or ())
    out = []
    for entry in plan:
        for prompt in source_prompts(entry["source"], entry["size"], entry["seed"]):
            if prompt not in seen:
                seen.add(prompt)
                out.append((entry["source"], prompt))
    return out


def train_plan(seed: int, scale: float) -> list[dict]:
    """The training prompt plan for a recipe seed."""
    return prompt_plan(TRAIN_SOURCES, lambda i: TRAIN_SEED_BASE + 10_000 * seed + 1_000 * i, scale)


def heldout_plan() -> list[dict]:
    """The held-out prompt plan: fixed seeds no training seed reaches."""
    return prompt_plan(HELDOUT_SOURCES, lambda i: HELDOUT_SEED + 1_000 * i)
