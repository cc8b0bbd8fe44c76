"""Shared pydantic base for spec sections: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A spec section: strict about unknown keys, lenient about int -> float."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True)
