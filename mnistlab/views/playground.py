"""The Playground's view as link parameters: which runs, which digit (a test index or a drawing).

``runs``: run references as on Compare (id and compact configuration); ``digit``: a test image
index; ``drawn``: a drawn 28x28 digit (:func:`mnistlab.datasets.drawing.encode`); ``focus``:
the run whose layers are shown. Untrusted: whatever is malformed is ignored with a message
(plain text that quotes the value: the page escapes it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from mnistlab.datasets import drawing
from mnistlab.views.share import RunRef, _Reader

SOURCES = ("draw", "test")


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
