"""The checks every deployment-definition parser makes (engine.definitions.settings and
engine.definitions.progressive): no unknown key, integers within their model's range. Each
refusal names the key as the file writes it and what to write instead."""

from __future__ import annotations

import difflib
from typing import Any

from engine.definitions.files import Bounds
from engine.errors import DefinitionError


def check_keys(
    obj: dict[str, Any], known: tuple[str, ...], where: str, file: str, also: tuple[str, ...] = ()
) -> None:
    """Refuse a key of ``obj`` (at ``where``) not in ``known``, naming the nearest of
    ``known`` and ``also`` (keys accepted elsewhere, such as the ones Gitmoxi ignores)."""
    for key in obj:
        if key not in known:
            near = difflib.get_close_matches(key, known + also, n=1, cutoff=0.6)
            name = f"{where}.{key}" if where else key
            raise DefinitionError(
                f"unknown key {name!r}",
                file=file,
                hint=f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(known)}",
            )


def check_int(value: Any, name: str, limits: Bounds, file: str) -> int:
    """``value`` if it is an integer (``3.0`` counts) within ``limits``."""
    low, high = limits.low, limits.high
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(f"{name} must be an integer", file=file, hint="use a number")
    if not low <= value <= high:
        raise DefinitionError(
            f"{name} is {value}, outside {low}..{high}", file=file, hint=f"use {low} to {high}"
        )
    return value


__all__ = ["check_int", "check_keys"]
