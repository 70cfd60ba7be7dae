"""Test-wide set-up: offline hub, headless MuJoCo, side-effect folders in temp dirs, markers, tiny LM."""

from __future__ import annotations

import os
import tempfile

# Before any library import: nothing downloads, MuJoCo renders headless, SB3 and Ray write to temp.
_SCRATCH = tempfile.mkdtemp(prefix="aligngym-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["SB3_LOGDIR"] = os.path.join(_SCRATCH, "sb3")
os.environ["RAY_TMPDIR"] = os.path.join(_SCRATCH, "ray")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

# One intra-op thread: on a loaded 2-core machine torch's default threads make small models crawl.
torch.set_num_threads(1)

TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: what is 2 + 3? Answer: 5",
    "Search[Alice Smith] Finish[Paris]",
    "A good reply is kind, short and true.",
    "unicode: café, naïve, 東京, emoji 🙂",
] * 20


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` tests need CUDA: without it they are reported as skipped (never as passed)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from aligngym.alignment.tiny import train_bpe_tokenizer

    return train_bpe_tokenizer(TINY_CORPUS, vocab_size=320)


@pytest.fixture()
def tiny_lm(tiny_tokenizer):
    """A fresh, seeded ~0.3M-parameter causal LM and its locally trained tokenizer (no hub)."""
    from aligngym.alignment.tiny import build_tiny_causal_lm

    model = build_tiny_causal_lm(tiny_tokenizer, seed=0, hidden_size=64, layers=2, heads=2)
    return model, tiny_tokenizer
