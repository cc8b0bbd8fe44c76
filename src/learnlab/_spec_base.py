"""Shared pydantic base for spec sections: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A spec section: unknown keys and non-finite floats (inf, nan) are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True, allow_inf_nan=False)
