"""A generated knowledge base for multi-hop question answering: entities, typed relations, documents, questions.

Everything is drawn from one seed, so a knowledge base is reproducible from its config alone; a small
default instance ships with the package (``envs/text/data/default_kb.json``). Each entity is one short
document ("Zorvani is a person. Zorvani was born in Kelmar. ..."); each question follows a chain of 2 or 3
relations from a start entity, so it is answerable by searching the start entity, reading off the next
entity, searching it, and so on. Entity names are single words, so a word-level tokenizer gives each name
exactly one token (copying a name is then a one-token induction problem for a tiny model).

Questions are split train / dev / test by START entity: no dev or test question starts from an entity that
a training question starts from (the intermediate entities are shared, as in any real corpus).

Example:
    >>> from aligngym.envs.text.knowledge_base import KnowledgeBase, KnowledgeBaseConfig
    >>> kb = KnowledgeBase.generate(KnowledgeBaseConfig(seed=1, people=12, companies=4, universities=3,
    ...                                                 cities=5, countries=2))
    >>> question = kb.questions("dev")[0]
    >>> kb.follow(question.start, question.relations) == question.answer
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from aligngym.files import atomic_write_text

ENTITY_TYPES = ("person", "company", "university", "city", "country")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Relation:
    """A typed, functional relation (each subject has exactly one object) and its sentence template."""

    name: str
    subject: str
    object: str
    sentence: str


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("born_in", "person", "city", "{s} was born in {o}."),
        Relation("works_for", "person", "company", "{s} works for {o}."),
        Relation("studied_at", "person", "university", "{s} studied at {o}."),
        Relation("based_in", "company", "city", "{s} is based in {o}."),
        Relation("founded_by", "company", "person", "{s} was founded by {o}."),
        Relation("located_in", "university", "city", "{s} is located in {o}."),
        Relation("in_country", "city", "country", "{s} lies in {o}."),
        Relation("capital", "country", "city", "The capital of {s} is {o}."),
    )
}
# Relations of each entity type, in the order their sentences appear in the entity's document.
RELATIONS_OF: dict[str, tuple[str, ...]] = {
    t: tuple(name for name, r in RELATIONS.items() if r.subject == t) for t in ENTITY_TYPES
}


@dataclass(frozen=True)
class QuestionTemplate:
    """A chain of relations from a start entity type, and how the question is worded."""

    relations: tuple[str, ...]
    text: str

    @property
    def name(self) -> str:
        return "/".join(self.relations)

    @property
    def start_type(self) -> str:
        return RELATIONS[self.relations[0]].subject


QUESTION_TEMPLATES: tuple[QuestionTemplate, ...] = (
    # two hops
    QuestionTemplate(("born_in", "in_country"), "In which country was {s} born?"),
    QuestionTemplate(("works_for", "based_in"), "In which city is the employer of {s} based?"),
    QuestionTemplate(("studied_at", "located_in"), "In which city did {s} study?"),
    QuestionTemplate(("works_for", "founded_by"), "Who founded the company that {s} works for?"),
    QuestionTemplate(("founded_by", "born_in"), "Where was the founder of {s} born?"),
    QuestionTemplate(("based_in", "in_country"), "In which country is {s} based?"),
    # three hops
    QuestionTemplate(
        ("works_for", "based_in", "in_country"), "In which country is the employer of {s} based?"
    ),
    QuestionTemplate(("studied_at", "located_in", "in_country"), "In which country did {s} study?"),
    QuestionTemplate(
        ("works_for", "founded_by", "born_in"), "Where was the founder of the employer of {s} born?"
    ),
    QuestionTemplate(
        ("born_in", "in_country", "capital"), "What is the capital of the country where {s} was born?"
    ),
    QuestionTemplate(
        ("founded_by", "born_in", "in_country"), "In which country was the founder of {s} born?"
    ),
)

_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "kr",
    "st",
    "tr",
    "th",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_CODAS = ("", "", "", "n", "r", "s", "l", "x", "th")


@dataclass
class KnowledgeBaseConfig:
    """Sizes and seed of a generated knowledge base."""

    seed: int = 0
    """Everything (names, relations, splits) is drawn from this seed."""
    people: int = 120
    companies: int = 30
    universities: int = 12
    cities: int = 30
    countries: int = 8
    hops: tuple[int, ...] = (2, 3)
    """Which question lengths to generate (2 and/or 3 relations)."""
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    """Fractions of start entities whose questions go to train / dev / test."""

    def __post_init__(self) -> None:
        self.hops = tuple(self.hops)
        self.split = tuple(float(x) for x in self.split)
        for name in ("people", "companies", "universities", "cities", "countries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cities < self.countries:
            raise ValueError(
                f"cities ({self.cities}) must be >= countries ({self.countries}): every country has a capital"
            )
        if not self.hops or any(h not in (2, 3) for h in self.hops):
            raise ValueError(f"hops {self.hops!r} is not valid; valid choices: a non-empty subset of (2, 3)")
        if len(self.split) != 3 or any(x < 0 for x in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise ValueError(
                f"split {self.split!r} must be three non-negative fractions (train, dev, test) summing to 1"
            )


@dataclass(frozen=True)
class Entity:
    name: str
    type: str
    relations: dict[str, str]
    """relation name -> object entity name."""

    def document(self) -> str:
        """The entity's short document: a type sentence, then one sentence per relation."""
        sentences = [f"{self.name} is a {self.type}."]
        sentences += [
            RELATIONS[r].sentence.format(s=self.name, o=self.relations[r]) for r in RELATIONS_OF[self.type]
        ]
        return " ".join(sentences)


@dataclass(frozen=True)
class Question:
    """A multi-hop question with its gold answer and the entity chain that answers it."""

    id: str
    text: str
    answer: str
    start: str
    relations: tuple[str, ...]
    path: tuple[str, ...]
    """Entities along the chain: start, intermediates, answer (len = hops + 1)."""
    split: str

    @property
    def hops(self) -> int:
        return len(self.relations)

    @property
    def template(self) -> str:
        return "/".join(self.relations)


class KnowledgeBase:
    """Entities and questions of one generated instance; JSON round-trips exactly."""

    def __init__(self, entities: list[Entity], questions: list[Question], config: KnowledgeBaseConfig):
        self.entities = list(entities)
        self._questions = list(questions)
        self.config = config
        self.by_name = {e.name: e for e in self.entities}
        self.question_by_id = {q.id: q for q in self._questions}
        if len(self.by_name) != len(self.entities):
            raise ValueError("entity names must be unique")

    # --- generation -------------------------------------------------------------------------------

    @classmethod
    def generate(cls, config: KnowledgeBaseConfig | None = None) -> KnowledgeBase:
        """Draw a knowledge base from ``config.seed``: same config, same entities, documents and questions."""
        config = config or KnowledgeBaseConfig()
        rng = np.random.default_rng(config.seed)
        counts = {
            "person": config.people,
            "company": config.companies,
            "university": config.universities,
            "city": config.cities,
            "country": config.countries,
        }
        names = _unique_names(rng, sum(counts.values()))
        pools: dict[str, list[str]] = {}
        start = 0
        for kind in ENTITY_TYPES:
            pools[kind] = names[start : start + counts[kind]]
            start += counts[kind]

        def pick(kind: str) -> str:
            return pools[kind][int(rng.integers(len(pools[kind])))]

        relations: dict[str, dict[str, str]] = {name: {} for kind in ENTITY_TYPES for name in pools[kind]}
        # Every country gets at least one city (its capital is drawn among its cities).
        countries = pools["country"]
        city_country = {
            c: countries[i] if i < len(countries) else pick("country") for i, c in enumerate(pools["city"])
        }
        for city, country in city_country.items():
            relations[city]["in_country"] = country
        for country in countries:
            own = [c for c in pools["city"] if city_country[c] == country]
            relations[country]["capital"] = own[int(rng.integers(len(own)))]
        for person in pools["person"]:
            relations[person].update(
                born_in=pick("city"), works_for=pick("company"), studied_at=pick("university")
            )
        for company in pools["company"]:
            relations[company].update(based_in=pick("city"), founded_by=pick("person"))
        for university in pools["university"]:
            relations[university]["located_in"] = pick("city")
        entities = [Entity(name, kind, relations[name]) for kind in ENTITY_TYPES for name in pools[kind]]

        split_of = _split_starts(rng, pools, config.split)
        by_name = {e.name: e for e in entities}
        questions = []
        for template in QUESTION_TEMPLATES:
            if len(template.relations) not in config.hops:
                continue
            for start_name in pools[template.start_type]:
                path = [start_name]
                for relation in template.relations:
                    path.append(by_name[path[-1]].relations[relation])
                questions.append(
                    Question(
                        id=f"{template.name}:{start_name}",
                        text=template.text.format(s=start_name),
                        answer=path[-1],
                        start=start_name,
                        relations=template.relations,
                        path=tuple(path),
                        split=split_of[start_name],
                    )
                )
        return cls(entities, questions, config)

    # --- queries ----------------------------------------------------------------------------------

    def questions(self, split: str | None = None) -> list[Question]:
        """Questions of one split (``train``, ``dev``, ``test``), or all of them."""
        if split is None:
            return list(self._questions)
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not valid; valid choices: {', '.join(SPLITS)}")
        return [q for q in self._questions if q.split == split]

    @cached_property
    def documents(self) -> list[tuple[str, str]]:
        """``(title, text)`` of every entity's document, in entity order."""
        return [(e.name, e.document()) for e in self.entities]

    def document(self, name: str) -> str:
        return self.by_name[name].document()

    def follow(self, start: str, relations: tuple[str, ...] | list[str]) -> str:
        """The entity reached from ``start`` by following ``relations`` (the ground truth of a question)."""
        node = start
        for relation in relations:
            node = self.by_name[node].relations[relation]
        return node

    def texts(self) -> list[str]:
        """Every document and question text: the corpus a tokenizer for this task is built from."""
        return [text for _, text in self.documents] + [q.text for q in self._questions]

    # --- files ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "entities": [{"name": e.name, "type": e.type, "relations": e.relations} for e in self.entities],
            "questions": [asdict(q) for q in self._questions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnowledgeBase:
        config = KnowledgeBaseConfig(**data["config"])
        entities = [Entity(e["name"], e["type"], dict(e["relations"])) for e in data["entities"]]
        questions = [
            Question(**{**q, "relations": tuple(q["relations"]), "path": tuple(q["path"])})
            for q in data["questions"]
        ]
        return cls(entities, questions, config)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeBase:
        """Load a knowledge base JSON written by :meth:`save`."""
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"knowledge base file {str(file)!r} does not exist")
        try:
            return cls.from_dict(json.loads(file.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(
                f"knowledge base file {str(file)!r} is not a valid knowledge base: {exc}"
            ) from None


def default_knowledge_base_path() -> Path:
    """The small default instance shipped with the package (``KnowledgeBaseConfig()``, seed 0)."""
    return Path(str(resources.files("aligngym.envs.text") / "data" / "default_kb.json"))


_CACHE: dict[str, KnowledgeBase] = {}


def load_knowledge_base(source: str | Path | KnowledgeBaseConfig | None = None) -> KnowledgeBase:
    """A knowledge base from a JSON path, a config (generated), or None / ``"default"`` (the shipped instance).

    Files are cached by resolved path, so many environments share one instance.
    """
    if isinstance(source, KnowledgeBaseConfig):
        return KnowledgeBase.generate(source)
    path = default_knowledge_base_path() if source in (None, "default") else Path(source)
    key = str(path.resolve())
    if key not in _CACHE:
        _CACHE[key] = KnowledgeBase.load(path)
    return _CACHE[key]


def _unique_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct single-word names of 2-3 syllables."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        syllables = int(rng.integers(2, 4))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            for _ in range(syllables)
        )
        word = (word + _CODAS[rng.integers(len(_CODAS))]).capitalize()
        if word not in seen:
            seen.add(word)
            names.append(word)
    return names


def _split_starts(
    rng: np.random.Generator, pools: dict[str, list[str]], fractions: tuple[float, float, float]
) -> dict[str, str]:
    """Assign every possible start entity to a split, type by type (so each split gets every question type)."""
    split_of: dict[str, str] = {}
    for kind in ("person", "company"):
        order = [pools[kind][i] for i in rng.permutation(len(pools[kind]))]
        n_train = round(fractions[0] * len(order))
        n_dev = round(fractions[1] * len(order))
        for i, name in enumerate(order):
            split_of[name] = "train" if i < n_train else "dev" if i < n_train + n_dev else "test"
    return split_of
