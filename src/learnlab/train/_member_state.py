"""A loop member's state in a checkpoint: its data stream, threshold tracker and history.

Members that share a data stream (see ``learnlab.tasks.next_stacked``) save the same stream
state; ``unshare_streams`` gives them streams of their own again when a checkpoint holds
different states for them (saved while each had its own stream, at different points).
"""

from __future__ import annotations

from typing import Any

import torch

from learnlab.tasks._stream import BatchStream

Member = Any  # a learnlab.train._loop.Member (not imported: _loop imports this module)

__all__ = ["save_member", "load_member", "unshare_streams"]


def save_member(m: Member) -> dict:
    h = m.history
    stream = m.stream
    return {
        "generator": stream.generator.get_state(),
        "order": getattr(stream, "_order", None),
        "pos": getattr(stream, "_pos", None),
        "tracker": m.tracker.state_dict(),
        "loss0": m.loss0,
        "history": {"metrics": h.metrics, "status": h.status, "step": h.step, "reason": h.reason},
        "artifacts": m.artifacts,
    }


def unshare_streams(members: list[Member], states: list[dict]) -> None:
    """Members that share a data stream but were saved in different stream states (saved while
    each had a stream of its own, at different points) go on with streams of their own."""
    groups: dict[int, list[tuple[Member, dict]]] = {}
    for m, s in zip(members, states):
        groups.setdefault(id(m.stream), []).append((m, s))
    for group in groups.values():
        first = group[0][1]
        if all(_same_stream_state(first, s) for _, s in group[1:]):
            continue
        for m, s in group:
            m.stream = m.stream.detached()
            _load_stream_state(m.stream, s)


def _same_stream_state(a: dict, b: dict) -> bool:
    same_order = (a["order"] is None) == (b["order"] is None) and (
        a["order"] is None or torch.equal(a["order"], b["order"])
    )
    return torch.equal(a["generator"], b["generator"]) and same_order and a["pos"] == b["pos"]


def _load_stream_state(stream: BatchStream, s: dict) -> None:
    stream.generator.set_state(s["generator"])
    if s["order"] is not None:
        stream._order, stream._pos = s["order"], s["pos"]


def load_member(m: Member, s: dict) -> None:
    _load_stream_state(m.stream, s)
    m.tracker.load_state_dict(s["tracker"])
    m.loss0 = s["loss0"]
    h = s["history"]
    m.history.metrics = {k: [tuple(r) for r in v] for k, v in h["metrics"].items()}
    m.history.status, m.history.step, m.history.reason = h["status"], h["step"], h["reason"]
    m.history.replay()  # into loggers that start afresh
    m.artifacts = s["artifacts"]
