"""docs/environments/ is current with the env docstrings and the registry; every env class documents itself."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "_scripts" / "gen_env_pages.py"
# Gymnasium's section order, then SpecGym's registered ids and the version policy
SECTIONS = (
    "## Description",
    "## Action Space",
    "## Observation Space",
    "## Rewards",
    "## Starting State",
    "## Episode End",
    "## Arguments",
    "## Registered Configurations",
    "## Version History",
)


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_env_pages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
CLASSES = gen.registered_classes()


def test_pages_are_current():
    stale = [str(path.relative_to(ROOT)) for path in gen.stale_pages()]
    assert not stale, f"stale env pages {stale}: regenerate with python docs/_scripts/gen_env_pages.py"


def test_one_page_per_env_class():
    pages = gen.render_pages()
    assert {path.name for path in pages} >= {"draft_verify.md", "arbitration.md"}
    assert len(pages) == len(CLASSES)


def test_check_flags_a_stale_page(monkeypatch, tmp_path, capsys):
    pages = gen.render_pages()
    monkeypatch.setattr(gen, "PAGES", tmp_path)
    for path, text in pages.items():
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    assert gen.main(["--check"]) == 0
    (tmp_path / "arbitration.md").write_text("outdated\n", encoding="utf-8")
    assert gen.stale_pages() == [tmp_path / "arbitration.md"]
    assert gen.main(["--check"]) == 1
    assert "stale: " in capsys.readouterr().out


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_env_class_docstring_has_every_section_in_order(cls):
    doc = inspect.cleandoc(cls.__doc__ or "")
    lines = doc.splitlines()
    missing = [heading for heading in SECTIONS if heading not in lines]
    assert not missing, f"{cls.__name__}'s docstring lacks {missing}"
    assert [lines.index(heading) for heading in SECTIONS] == sorted(lines.index(h) for h in SECTIONS)


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_docstring_names_every_registered_id(cls):
    for spec in CLASSES[cls]:
        assert f"``{spec.id}``" in cls.__doc__, f"{spec.id} is not under {cls.__name__}'s Registered Configurations"
