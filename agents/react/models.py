"""Policies for the ReAct agent: a word-level tiny Llama built offline, or any causal LM path / hub id.

Why word level: a character-level tiny model learned the ReAct format but could not copy an unseen
entity name from the question or an observation into its next ``Search[...]`` (see
docs/react-rest.md). With one token per whitespace/punctuation-separated word, every entity name of
the generated knowledge base is ONE token, so copying it is a one-token induction problem, and
transcripts are ~5x shorter. The tokenizer ignores whitespace: ``decode`` joins tokens with spaces
(``Action : Search [ Kelmar ]``), which the env's step parser accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from aligngym.alignment.models import ModelSpec, load_causal_lm, load_tokenizer
from aligngym.alignment.tiny import SPECIAL_TOKENS, build_tiny_causal_lm
from aligngym.envs.text.knowledge_base import KnowledgeBase
from aligngym.envs.text.react import ENV_TEXTS

TINY_MAX_POSITIONS = 1024


def _word_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )


def build_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is every word and punctuation mark of ``texts`` (sorted, so
    the same texts give the same ids); anything else is ``<unk>``."""
    pre = _word_pre_tokenizer()
    words = sorted(
        {word for text in texts for word, _ in pre.pre_tokenize_str(text)} - set(SPECIAL_TOKENS.values())
    )
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS.values(), *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS.values()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    fast.padding_side = "left"
    return fast


def task_corpus(kb: KnowledgeBase, extra: Iterable[str] = ()) -> list[str]:
    """The texts a tiny policy's vocabulary comes from: documents, questions, the env's fixed texts."""
    return [*kb.texts(), *ENV_TEXTS, *extra]


def load_policy(
    spec: ModelSpec, kb: KnowledgeBase, seed: int = 0, extra_texts: Iterable[str] = ()
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``tiny``: a seeded tiny Llama over a word-level tokenizer of the task; else any saved folder or hub id
    (through aligngym.alignment.models, so dtype, device_map and attention settings apply)."""
    if spec.is_tiny:
        tokenizer = build_word_tokenizer(task_corpus(kb, extra_texts))
        model = build_tiny_causal_lm(
            tokenizer,
            seed=seed,
            hidden_size=spec.tiny_hidden_size,
            layers=spec.tiny_layers,
            heads=spec.tiny_heads,
            max_position_embeddings=TINY_MAX_POSITIONS,
        )
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer
    tokenizer = load_tokenizer(spec)
    return load_causal_lm(spec, tokenizer, seed=seed), tokenizer


def entity_token_ids(tokenizer: PreTrainedTokenizerBase, kb: KnowledgeBase) -> list[int]:
    """Token ids of the entity names that are a single token (all of them for the word-level tokenizer)."""
    ids = []
    for entity in kb.entities:
        encoded = tokenizer.encode(entity.name, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] != tokenizer.unk_token_id:
            ids.append(encoded[0])
    return ids


def randomize_embeddings(model: PreTrainedModel, token_ids: Sequence[int], std: float, seed: int) -> None:
    """Draw the embeddings of ``token_ids`` afresh from N(0, std^2) (seeded)."""
    weight = model.get_input_embeddings().weight
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        values = torch.randn(len(token_ids), weight.shape[1], generator=generator) * std
        weight[torch.tensor(list(token_ids), dtype=torch.long)] = values.to(weight.dtype).to(weight.device)


def freeze_embeddings(model: PreTrainedModel, token_ids: Sequence[int]) -> None:
    """Zero the gradient of the embedding rows of ``token_ids`` (idempotent; tied output rows included).

    Frozen random entity embeddings are pointer-like symbols: training cannot make seen names special,
    so a copy mechanism learned on training names applies unchanged to names never trained on. (Use no
    weight decay: AdamW's decoupled decay would still shrink the frozen rows.)
    """
    weight = model.get_input_embeddings().weight
    if getattr(weight, "_aligngym_frozen_rows", None) is not None:
        weight._aligngym_frozen_rows[torch.tensor(list(token_ids), dtype=torch.long)] = 0
        return
    mask = torch.ones(weight.shape[0], 1, dtype=weight.dtype)
    mask[torch.tensor(list(token_ids), dtype=torch.long)] = 0
    weight._aligngym_frozen_rows = mask
    weight.register_hook(lambda grad: grad * mask.to(grad.device, grad.dtype))


class EntityRenamer:
    """Renders a transcript in a renamed world: a random bijection of entity names applied to every word.

    Data augmentation for tiny policies: the same reasoning with other names, so that names cannot be
    memorised and the model must read and copy them. Names are single words (word-boundary matches).
    """

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self._pattern = re.compile(
            r"\b(" + "|".join(map(re.escape, sorted(self.names, key=len, reverse=True))) + r")\b"
        )

    def rename(self, text: str, mapping: dict[str, str]) -> str:
        return self._pattern.sub(lambda m: mapping[m.group(0)], text)

    def augment(self, rows: Sequence[dict[str, str]], copies: int, seed: int) -> list[dict[str, str]]:
        """``rows`` plus ``copies`` renamed versions of each (prompt and completion renamed alike)."""
        rng = np.random.default_rng(seed)
        out = [dict(r) for r in rows]
        for _ in range(copies):
            for row in rows:
                mapping = dict(zip(self.names, (self.names[i] for i in rng.permutation(len(self.names)))))
                out.append(
                    {
                        "prompt": self.rename(row["prompt"], mapping),
                        "completion": self.rename(row["completion"], mapping),
                    }
                )
        return out
