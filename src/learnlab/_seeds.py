"""Derived seeds: every random stream of a run comes from (seed, run id, role)."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(seed: int, rid: str, role: str) -> int:
    """A 63-bit seed for one role (``init``, ``data``, ``test``, ``large``) of one run."""
    digest = hashlib.sha256(f"{seed}:{rid}:{role}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
