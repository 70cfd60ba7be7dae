"""Teacher rules at the cases that tell them apart: the skip rule looks at the BETTER item, exact ties
are labelled 0.5 by every teacher (the stochastic one included)."""

from __future__ import annotations

import numpy as np

from aligngym.rewards.teachers import Teacher


def test_skip_keeps_a_pair_whose_better_item_reaches_the_threshold():
    a, b = np.array([2.0, 0.5, 0.2, 3.0]), np.array([0.5, 2.0, 0.9, 1.0])
    out = Teacher(skip_threshold=1.0).label(a, b, np.random.default_rng(0))
    assert out.keep.tolist() == [True, True, False, True]  # kept although the worse item is below 1
    assert out.labels.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_exact_ties_are_equal_for_the_stochastic_teacher():
    a = np.array([1.0, 2.0, 3.0] * 50)
    out = Teacher(beta=1.0).label(a, a.copy(), np.random.default_rng(0))
    assert (out.labels == 0.5).all() and not out.corrupted.any()
