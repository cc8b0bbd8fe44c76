"""Orthonormal probabilists' Hermite polynomials.

He_0 = 1, He_1 = x, He_{k+1} = x He_k - k He_{k-1}; under z ~ N(0, 1),
E[He_m He_n] = n! delta_mn, so h_k = He_k / sqrt(k!) is orthonormal.

We run the recurrence directly on the normalised h_k, which never forms k! or
He_k (both overflow in float32 long before k = 30):

    h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k + 1).
"""

from __future__ import annotations

import math

import torch

__all__ = ["hermite", "hermite_monomial", "hermite_stack"]


def hermite(k: int, x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Hermite polynomial h_k = He_k / sqrt(k!) applied elementwise.

    Args:
        k: degree, k >= 0.
        x: any tensor.

    Returns:
        Tensor of the shape, dtype and device of ``x``.

    Raises:
        ValueError: if ``k`` is negative or not an integer.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"hermite degree must be an integer >= 0, got {k!r}")
    prev = torch.ones_like(x)
    if k == 0:
        return prev
    cur = x.clone()
    for j in range(1, k):
        prev, cur = cur, (x * cur - math.sqrt(j) * prev) / math.sqrt(j + 1)
    return cur


def hermite_monomial(monomial: dict[int, int], x: torch.Tensor) -> torch.Tensor:
    """Multi-index Hermite monomial h_alpha(x) = prod_i h_{k_i}(x_i).

    Args:
        monomial: ``{index: degree}``.
        x: (n, d) inputs.

    Returns:
        (n,) values; unit variance when x ~ N(0, I_d).
    """
    out = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    for i, k in monomial.items():
        out = out * hermite(int(k), x[:, int(i)])
    return out


def hermite_stack(kmax: int, x: torch.Tensor) -> torch.Tensor:
    """All orthonormal Hermite polynomials h_0..h_kmax of ``x`` at once.

    Args:
        kmax: largest degree, kmax >= 0.
        x: any tensor, shape S.

    Returns:
        Tensor of shape (*S, kmax + 1) with ``out[..., k] = h_k(x)``.
    """
    if isinstance(kmax, bool) or not isinstance(kmax, int) or kmax < 0:
        raise ValueError(f"hermite degree must be an integer >= 0, got {kmax!r}")
    out = [torch.ones_like(x)]
    if kmax >= 1:
        out.append(x)
    for j in range(1, kmax):
        out.append((x * out[j] - math.sqrt(j) * out[j - 1]) / math.sqrt(j + 1))
    return torch.stack(out, dim=-1)
