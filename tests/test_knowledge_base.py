"""The generated knowledge base and its BM25 search tool."""

from __future__ import annotations

import json

import pytest

from aligngym.envs.text.knowledge_base import (
    QUESTION_TEMPLATES,
    RELATIONS,
    KnowledgeBase,
    KnowledgeBaseConfig,
    default_knowledge_base_path,
    load_knowledge_base,
)
from aligngym.envs.text.search import SearchTool

SMALL = KnowledgeBaseConfig(seed=3, people=20, companies=6, universities=4, cities=7, countries=3)


def test_generation_is_deterministic_per_seed():
    a = KnowledgeBase.generate(SMALL).to_dict()
    b = KnowledgeBase.generate(SMALL).to_dict()
    c = KnowledgeBase.generate(KnowledgeBaseConfig(**{**SMALL.__dict__, "seed": 4})).to_dict()
    assert json.dumps(a) == json.dumps(b)
    assert [e["name"] for e in a["entities"]] != [e["name"] for e in c["entities"]]


def test_shipped_default_instance_is_the_default_config_regenerated():
    shipped = load_knowledge_base()
    assert default_knowledge_base_path().is_file()
    assert json.dumps(shipped.to_dict()) == json.dumps(
        KnowledgeBase.generate(KnowledgeBaseConfig()).to_dict()
    )
    sizes = {split: len(shipped.questions(split)) for split in ("train", "dev", "test")}
    assert sizes == {"train": 735, "dev": 156, "test": 159}


@pytest.mark.parametrize("source", ["default", SMALL])
def test_every_question_is_answerable_by_following_its_hops_through_documents(source):
    kb = load_knowledge_base(source)
    assert {q.hops for q in kb.questions()} == {2, 3}
    for question in kb.questions():
        entity = question.start
        assert entity in question.text
        for hop, relation in enumerate(question.relations):
            document = kb.document(entity)
            following = question.path[hop + 1]
            assert RELATIONS[relation].sentence.format(s=entity, o=following) in document
            entity = following
        assert entity == question.answer == kb.follow(question.start, question.relations)


def test_splits_are_disjoint_by_start_entity_and_cover_every_template():
    kb = load_knowledge_base()
    starts = {split: {q.start for q in kb.questions(split)} for split in ("train", "dev", "test")}
    assert (
        not starts["train"] & starts["dev"]
        and not starts["train"] & starts["test"]
        and not starts["dev"] & starts["test"]
    )
    for split in ("train", "dev", "test"):
        assert {q.template for q in kb.questions(split)} == {t.name for t in QUESTION_TEMPLATES}


def test_capitals_lie_in_their_country_and_names_are_single_unique_words():
    kb = KnowledgeBase.generate(SMALL)
    for entity in kb.entities:
        assert entity.name.isalpha() and " " not in entity.name
        if entity.type == "country":
            assert kb.by_name[entity.relations["capital"]].relations["in_country"] == entity.name
    template_words = {w.lower().strip("?.") for t in QUESTION_TEMPLATES for w in t.text.split()}
    template_words |= {w.lower().strip(".") for r in RELATIONS.values() for w in r.sentence.split()}
    assert not {e.name.lower() for e in kb.entities} & template_words


def test_save_load_round_trip_and_clear_errors(tmp_path):
    kb = KnowledgeBase.generate(SMALL)
    kb.save(tmp_path / "kb.json")
    assert json.dumps(KnowledgeBase.load(tmp_path / "kb.json").to_dict()) == json.dumps(kb.to_dict())
    with pytest.raises(ValueError, match="does not exist"):
        KnowledgeBase.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid knowledge base"):
        KnowledgeBase.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="valid choices: train, dev, test"):
        kb.questions("validation")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"hops": (4,)}, "hops"),
        ({"split": (0.5, 0.5, 0.5)}, "summing to 1"),
        ({"people": 0}, "people"),
        ({"cities": 2}, "capital"),
    ],
)
def test_config_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        KnowledgeBaseConfig(**{**SMALL.__dict__, **bad})


def test_search_returns_the_entity_document_first_for_an_exact_entity_query():
    kb = load_knowledge_base()
    tool = SearchTool(kb.documents)
    for entity in kb.entities:
        top = tool.search(entity.name, k=3)
        assert top[0].title == entity.name
        assert top[0].text == kb.document(entity.name)
        assert [s.score for s in top] == sorted((s.score for s in top), reverse=True)


def test_search_edge_cases():
    kb = load_knowledge_base()
    tool = SearchTool(kb.documents, snippet_chars=20)
    assert tool.search("") == []
    assert tool.search("the of") == []  # stopwords only
    assert tool.search("東京 🙂") == []
    assert tool.search("Zzzzqqq") == []
    name = kb.entities[0].name
    assert len(tool.search(name, k=2)[0].text) == 20
    assert tool.search(name + " " + "x" * 10_000, k=1)[0].title == name
    with pytest.raises(ValueError, match="k must be >= 1"):
        tool.search(name, k=0)
