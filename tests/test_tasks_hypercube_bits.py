"""The hypercube sampler spreads 32-bit integers into +-1 coordinates: check it bit by bit."""

from __future__ import annotations

import torch

from learnlab.tasks._inputs import Hypercube


def test_coordinates_are_the_bits_of_the_drawn_words_in_order():
    n, d = 7, 45  # n * d = 315: not a multiple of 32, so the last word is partly used
    x = Hypercube(d).sample(n, torch.Generator().manual_seed(11))
    words = torch.randint(0, 1 << 32, (-(-n * d // 32),), generator=torch.Generator().manual_seed(11))
    bits = [(int(w) >> j) & 1 for w in words for j in range(32)]  # slow and obvious: LSB first
    expected = torch.tensor([1.0 - 2.0 * b for b in bits[: n * d]]).view(n, d)
    assert torch.equal(x, expected)


def test_fair_independent_coins_in_any_float_dtype():
    cube = Hypercube(64)
    x = cube.sample(20000, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.dtype == torch.float64 and x.is_contiguous() and set(x.unique().tolist()) == {-1.0, 1.0}
    assert x.mean(0).abs().max() < 5 * 20000**-0.5  # each coordinate fair (5 sigma over 64)
    corr = x.T @ x / x.shape[0] - torch.eye(64, dtype=torch.float64)
    assert corr.abs().max() < 5 * 20000**-0.5  # pairwise uncorrelated, neighbours in a byte included
    assert cube.sample(3, torch.Generator().manual_seed(1), dtype=torch.float16).dtype == torch.float16
