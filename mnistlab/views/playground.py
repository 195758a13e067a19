"""The Playground's view as link parameters, and what the page says and draws about the answers.

``runs``: run references as on Compare (id and compact configuration); ``digit``: a test image
index; ``drawn``: a drawn 28x28 digit (:func:`mnistlab.datasets.drawing.encode`); ``focus``:
the run whose layers are shown. Untrusted: whatever is malformed is ignored with a message
(plain text that quotes the value: the page escapes it).

:func:`agreement` turns the runs' answers into the flag above the probability charts (who is
outvoted, in plain words); :func:`feature_maps` draws a layer's feature maps as pictures, dimmed
against the layer's strongest map, so a map that stays dark really is (nearly) inactive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from mnistlab.datasets import drawing
from mnistlab.views import charts
from mnistlab.views.share import RunRef, _Reader

SOURCES = ("draw", "test")
DIM_BELOW = 0.05  # feature maps: a map whose peak is under this share of its layer's peak is drawn dim


@dataclasses.dataclass(frozen=True)
class PlaygroundView:
    runs: tuple[RunRef, ...] = ()
    source: str = "draw"
    index: int = 0
    drawn: np.ndarray | None = None  # uint8 (28, 28): the input the models saw
    focus: RunRef | None = None

    def to_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.runs:
            params["runs"] = ",".join(ref.encode() for ref in self.runs)
        params["source"] = self.source
        if self.source == "test":
            params["digit"] = str(self.index)
        elif self.drawn is not None and self.drawn.any():
            params["drawn"] = drawing.encode(self.drawn)
        if self.focus is not None:
            params["focus"] = self.focus.encode()
        return params


def parse_playground(params: Mapping[str, Any], n_images: int) -> tuple[PlaygroundView, list[str]]:
    read = _Reader(params)
    runs = read.runs("runs")
    drawn = None
    text = read.text("drawn", limit=drawing.MAX_LINK_LENGTH)
    if text:
        try:
            drawn = drawing.decode(text)
        except ValueError as exc:
            read.messages.append(f"Ignored the link's 'drawn': {exc}.")
    source = read.choice("source", SOURCES, "test" if "digit" in params and drawn is None else "draw")
    view = PlaygroundView(runs=runs, source=source,
                          index=read.number("digit", 0, max(n_images - 1, 0), 0, integer=True),
                          drawn=drawn, focus=read.run("focus"))
    return view, read.messages


def _all_say(n: int, answer: str) -> str:
    return {1: f"1 run says {answer}", 2: f"both runs say {answer}"}.get(n, f"all {n:,} runs say {answer}")


@dataclasses.dataclass(frozen=True)
class Agreement:
    """What the selected runs say about one digit, for the flag above their charts.

    ``kind``: ``"single"`` (one run: nothing to compare), ``"agree"`` or ``"disagree"``;
    ``flagged``: the runs to shade (outvoted, or every run of a task whose runs have no
    majority); ``message``: plain text that quotes run names (the page escapes it).
    """

    kind: str
    flagged: frozenset[str]
    message: str


def agreement(answers: Mapping[str, tuple[str, str]], names: Mapping[str, str]) -> Agreement:
    """``answers``: run id -> (task name, the run's answer as a class name), in the order shown;
    ``names``: run id -> a short name. Runs are compared within their task only (a digit and
    "odd" are not a disagreement). A task's answer is its runs' strict majority; without one
    (a tie) every run of that task is flagged."""
    if len(answers) <= 1:
        return Agreement("single", frozenset(), "One run selected: add another to see whether they agree.")
    groups: dict[str, list[str]] = {}
    for rid, (task, _) in answers.items():
        groups.setdefault(task, []).append(rid)
    several = len(groups) > 1
    flagged: set[str] = set()
    agreeing, disputes = [], []
    says = lambda rid: f"{names[rid]} says {answers[rid][1]}"
    for task, ids in groups.items():
        votes: dict[str, list[str]] = {}
        for rid in ids:
            votes.setdefault(answers[rid][1], []).append(rid)
        prefix = f"{task}: " if several else ""
        if len(votes) == 1:
            agreeing.append(prefix + _all_say(len(ids), answers[ids[0]][1]))
            continue
        top_answer, top_voters = max(votes.items(), key=lambda item: len(item[1]))  # first shown wins ties
        if len(top_voters) * 2 > len(ids):
            outvoted = [rid for rid in ids if answers[rid][1] != top_answer]
            flagged.update(outvoted)
            majority = f"{len(top_voters)} of {len(ids)} runs say {top_answer}"
            disputes.append(f"{prefix}{majority}; outvoted (shaded): {', '.join(says(rid) for rid in outvoted)}.")
        else:
            flagged.update(ids)
            disputes.append(f"{prefix}no majority, so {'both' if len(ids) == 2 else f'all {len(ids)}'} are shaded: "
                            f"{', '.join(says(rid) for rid in ids)}.")
    if disputes:
        return Agreement("disagree", frozenset(flagged), "The runs disagree about this digit. " + " ".join(
            d[0].upper() + d[1:] for d in disputes))
    if several:
        return Agreement("agree", frozenset(), "The runs of each task agree — " + "; ".join(agreeing) + ".")
    return Agreement("agree", frozenset(), agreeing[0][0].upper() + agreeing[0][1:] + ".")


def feature_maps(values: np.ndarray, zoom: int = 1) -> list[str]:
    """A conv or pooling layer's output for one digit, (height, width, channels), as one picture per
    map (PNG ``data:`` URLs, each value ``zoom`` x ``zoom`` pixels), in channel order ``#0``.. .
    Each map is scaled to its own peak (white), so every filter's pattern shows, and black is 0: a
    filter that does not fire on this digit stays black, and one weaker than ``DIM_BELOW`` of the
    layer's strongest is drawn on that floor instead of being blown up to white. Pictures, not a grid
    of heatmaps: 32 or 64 small charts would cost a fresh browser seconds to draw."""
    values = np.asarray(values, dtype=float)
    floor = max(float(values.max()) if values.size else 0.0, 0.0) * DIM_BELOW
    pictures = []
    for f in range(values.shape[-1]):
        image = values[:, :, f]
        low = min(float(image.min()), 0.0) if image.size else 0.0
        high = max(float(image.max()) if image.size else 0.0, floor)
        pictures.append(charts.picture_url(image, "gray", zoom=zoom, bounds=(low, high if high > low else low + 1.0)))
    return pictures
