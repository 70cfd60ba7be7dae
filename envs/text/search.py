"""A local BM25 search tool over a knowledge base's documents (bm25s): a query in, the top-k snippets out.

It reads only the in-memory corpus: no network, and the query is only tokenised, never evaluated.

Example:
    >>> from aligngym.envs.text.knowledge_base import load_knowledge_base
    >>> from aligngym.envs.text.search import SearchTool
    >>> kb = load_knowledge_base()
    >>> tool = SearchTool(kb.documents)
    >>> name = kb.entities[0].name
    >>> tool.search(name, k=1)[0].title == name
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aligngym.extras import require

require("bm25s", "aligngym/ReActQA-v0's search")
import bm25s

MAX_QUERY_CHARS = 200


@dataclass(frozen=True)
class Snippet:
    title: str
    text: str
    score: float


class SearchTool:
    """BM25 (Lucene variant, English stopwords) over ``(title, text)`` documents."""

    def __init__(self, documents: Sequence[tuple[str, str]], snippet_chars: int = 300):
        if not documents:
            raise ValueError("the search tool needs at least one document")
        if snippet_chars < 1:
            raise ValueError(f"snippet_chars must be >= 1, got {snippet_chars}")
        self.titles = [title for title, _ in documents]
        self.texts = [text for _, text in documents]
        self.snippet_chars = snippet_chars
        self._retriever = bm25s.BM25()
        self._retriever.index(self._tokenize(self.texts), show_progress=False)

    @staticmethod
    def _tokenize(texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)

    def search(self, query: str, k: int = 3) -> list[Snippet]:
        """The best ``k`` documents with a positive score, best first (empty when no query word matches)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        tokens = self._tokenize([query[:MAX_QUERY_CHARS]])
        if not tokens[0]:
            return []
        k = min(k, len(self.texts))
        indices, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [
            Snippet(self.titles[i], self.texts[i][: self.snippet_chars], float(s))
            for i, s in zip(indices[0].tolist(), scores[0].tolist())
            if s > 0
        ]
