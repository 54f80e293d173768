"""Build experiments/prompts/spec_bench_style.jsonl: 48 prompts, 8 in each Spec-Bench category.

    python docs/_scripts/make_spec_bench_style.py

Sources (none is a benchmark's test prompt): ``mt_bench``, ``translation``, ``summarization`` and
``qa`` were written for the project (below); ``math_reasoning`` is reasoning-gym ``gsm_symbolic``
at seed HELDOUT_SEED + 500 (inside the held-out range of envs/tasks/splits.py, no training draw);
``rag`` puts one of the project's own documentation pages (a few thousand characters) before a
question about it (the page as it stood when the file was built: the committed file is the
measured snapshot, so later edits of the docs do not change it unless it is built again).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from envs.tasks.prompts import reasoning_gym_prompts  # noqa: E402
from envs.tasks.splits import HELDOUT_SEED  # noqa: E402

OUT = ROOT / "experiments" / "prompts" / "spec_bench_style.jsonl"

MT_BENCH = [
    "Write a short, upbeat announcement for a neighbourhood newsletter about a new community tool library "
    "where residents can borrow drills, ladders and garden tools.",
    "You are a museum guide at a science museum. Welcome a school class and introduce the exhibition on "
    "how bridges carry weight.",
    "Three friends share a pizza cut into 12 slices. Ana eats a quarter of it, Ben eats two slices more than "
    "Ana, and Chen eats the rest. How many slices does Chen eat? Explain your reasoning.",
    "Write a Python function that takes a list of words and returns a dictionary mapping each word length "
    "to the number of words of that length. Include a short example.",
    "From the following note, extract every date and the event it belongs to as a bulleted list: The kick-off "
    "meeting is on 4 March, the first draft is due on 18 March, reviews close on 2 April and the launch party "
    "is on 20 April.",
    "Explain to a curious teenager why ice floats on water while most solids sink in their own liquid.",
    "Describe how the invention of the printing press changed the way ideas spread in Europe, in one paragraph.",
    "Give me a simple weekly plan for someone who wants to start running, three days a week, with rest days "
    "and a short explanation of each session.",
]

TRANSLATION = [
    "Translate German to English: Der Zug nach Hamburg hatte heute Morgen wegen eines Signalfehlers fast eine "
    "Stunde Verspätung.",
    "Translate German to English: Die Stadtbibliothek verlängert ab nächster Woche ihre Öffnungszeiten am Wochenende.",
    "Translate German to English: Nach dem langen Winter freuen sich die Bauern endlich über warmes Wetter und Regen.",
    "Translate German to English: Das neue Museum zeigt Werkzeuge und Fotografien aus dem Alltag der Fischer an "
    "der Küste.",
    "Translate French to English: Les habitants du quartier ont planté vingt arbres le long de la rivière "
    "samedi dernier.",
    "Translate French to English: Le restaurant au coin de la rue ferme pendant deux semaines pour des travaux.",
    "Translate English to Spanish: The children built a small wooden boat and sailed it across the pond.",
    "Translate English to Spanish: Please remember to water the plants while we are away on holiday.",
]

SUMMARIES = [
    "The town of Wexley opened its first indoor market hall on Saturday after three years of construction. "
    "The hall houses forty stalls selling vegetables, cheese, bread and fish, most of them run by farmers and "
    "producers from within thirty kilometres. The council paid for the building with a regional grant and a "
    "loan that it expects to repay from stall rents within fifteen years. On the opening day more than six "
    "thousand visitors came, and several stalls sold out before noon. Some shop owners on the high street worry "
    "that the market will draw customers away, but the council argues that the extra visitors will benefit "
    "the whole town centre.",
    "A team of volunteer divers spent the summer mapping the wreck of a cargo ship that sank off the northern "
    "cape in 1911. Using underwater cameras, they produced a three-dimensional model of the hull, which lies in "
    "two pieces at a depth of thirty metres. The divers also recovered a ship's bell and several ceramic "
    "plates, now on display at the harbour museum. Historians had long believed the ship was carrying coal, but "
    "the survey found crates of roof tiles, suggesting it was bound for a building project on the islands.",
    "The regional bus company will replace its diesel fleet with electric buses over the next five years. The "
    "first twenty vehicles arrive in the spring and will run on the busiest city routes. Charging stations are "
    "being installed at two depots, and drivers will receive training on the new vehicles. The company says "
    "the change will cut fuel costs by about a third and reduce noise in the city centre. Passenger groups "
    "welcomed the plan but asked the company to keep ticket prices stable during the transition.",
    "Researchers at a coastal university have found that a common seaweed can grow twice as fast when farmed "
    "next to mussel lines. The mussels release nutrients that the seaweed absorbs, while the seaweed takes up "
    "carbon dioxide and makes the water less acidic around the shellfish. In a two-year trial the combined "
    "farms produced more food per hectare than either crop alone. The researchers now want to test the idea "
    "with local fishing families, who could add seaweed to their existing mussel farms at low cost.",
    "After a dry summer, the city's reservoirs are at their lowest level in twenty years. The water authority "
    "has asked residents to avoid watering lawns and washing cars, and it has started repairing leaking pipes "
    "that lose an estimated fifteen percent of the water supply. If the autumn stays dry, a ban on garden "
    "hoses could follow. Farmers in the valley have already reduced irrigation, and some have switched to crops "
    "that need less water.",
    "A small software company in the old mill district has introduced a four-day working week for its forty "
    "employees. Staff work the same number of hours over four days and choose whether to take Monday or Friday "
    "off. After six months, the company reports fewer sick days and says that customer response times have not "
    "changed. Some employees said the longer days were tiring at first, but most asked to keep the new schedule.",
    "The annual lantern festival returned to the old harbour on Friday night after a two-year break. Thousands "
    "of people walked along the quay to see more than five hundred paper lanterns made by schools and local "
    "artists. This year's theme was the sea, and many lanterns showed whales, boats and lighthouses. The "
    "organisers said the festival cost less than before because volunteers built most of the displays, and "
    "they hope to make it larger next year.",
    "A new study of city parks found that people who live within a ten-minute walk of a green space visit a "
    "doctor less often for stress-related complaints. The researchers followed eight thousand adults for four "
    "years and took account of income, age and health at the start. The effect was strongest for parks with "
    "trees and water rather than open lawns. The authors suggest that planners should treat parks as part of "
    "public health, not only as places for leisure.",
]
ASKS = ["Summarize the following article in two sentences.", "Summarize the following text in one sentence."]

QA = [
    "What is the boiling point of water at sea level in degrees Fahrenheit?",
    "Which planet in our solar system has the most moons known today, and roughly how many?",
    "What gas do plants take in from the air to make their food?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the longest river in South America?",
    "How many bones are there in the adult human body?",
    "What is the capital city of Canada?",
    "Which element has the chemical symbol Fe?",
]

RAG = [
    (
        "docs/engine.md",
        "According to the document above, why does the project use its own draft-and-verify loop "
        "instead of generate(assistant_model=...)?",
    ),
    (
        "docs/pairs.md",
        "According to the document above, where does the smollm2-135m target come from and how is its draft trained?",
    ),
    ("docs/scaling.md", "According to the document above, what are the steps to run on a cluster with GPUs?"),
    (
        "docs/architecture.md",
        "According to the document above, in which direction do the packages depend on each other?",
    ),
    (
        "docs/environments_overview.md",
        "According to the document above, what does the agent decide in each of the two environments?",
    ),
    (
        "docs/findings/arbitration.md",
        "According to the document above, how much did the trained arbitration policy gain over target-only decoding?",
    ),
    (
        "docs/findings/speed.md",
        "According to the document above, how does the engine's speed compare with transformers' assisted generation?",
    ),
    ("docs/usage.md", "According to the document above, which command trains a policy on DraftVerify?"),
]
RAG_CHARS = 6000  # a page's first characters: long contexts of a few thousand characters


def build() -> list[dict]:
    rows: list[tuple[str, str]] = [("mt_bench", t) for t in MT_BENCH]
    rows += [("translation", t) for t in TRANSLATION]
    rows += [("summarization", f"{ASKS[i % 2]}\n\n{t}") for i, t in enumerate(SUMMARIES)]
    rows += [("qa", t) for t in QA]
    math = reasoning_gym_prompts(8, HELDOUT_SEED + 500, ("gsm_symbolic",))
    rows += [("math_reasoning", t) for t in math]
    for page, question in RAG:
        text = (ROOT / page).read_text()[:RAG_CHARS]
        rows.append(("rag", f"Document:\n{text}\n\nQuestion: {question}"))
    return [{"question_id": i + 1, "category": c, "turns": [t]} for i, (c, t) in enumerate(rows)]


def main() -> int:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in build())
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
