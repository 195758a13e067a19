"""Share links: a page's view as URL query parameters, and back, safely.

Each view (Compare, Inspect, Filters) turns into a flat ``dict[str, str]`` for
``st.query_params`` and is parsed back from untrusted parameters. Parsing never raises:
it returns the view it could read plus one short message per thing it ignored (unknown run
ids, malformed numbers, path fragments, oversized lists, wrong types).

A link names each run by its id *and* carries its compact configuration
(``cnn~epochs:3~batch_size:200``), so a recipient whose store lacks the run can train
exactly it. The data source is never in a link: paths mean nothing on another machine.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping
from urllib.parse import urlencode

from mnistlab.analysis.filters import MAX_KERNEL_SIZE, PADDINGS, PRESETS, validate_kernel
from mnistlab.runs.config import FIELDS, RunConfig
from mnistlab.views.charts import METRICS, X_AXES

MAX_RUNS = 12
MAX_VALUE_LENGTH = 2000
RUN_ID = re.compile(r"^[0-9a-f]{16}$")
COMPARE_MODES = ("side by side", "overlay")
# Configuration fields a link may carry: those with a short key in the table (never ``data``;
# ``arch`` leads the compact form without a key).
_KEYS = {field.link: name for name, field in FIELDS.items() if field.link}


@dataclasses.dataclass(frozen=True)
class RunRef:
    """A run named by a link: its id, and its configuration when the link carries one."""

    run_id: str
    config: RunConfig | None = None

    def encode(self) -> str:
        return self.run_id if self.config is None else f"{self.run_id}~{encode_config(self.config)}"


def encode_config(config: RunConfig) -> str:
    """``arch~key:value~...`` with only the fields that differ from the defaults."""
    parts = [config.arch]
    for short, name in _KEYS.items():
        value = getattr(config, name)
        if value != FIELDS[name].default:
            parts.append(f"{short}:{'none' if value is None else value}")
    return "~".join(parts)


def _value(name: str, text: str) -> Any:
    """A link's text for field ``name``: a number where it reads as one, else the text (RunConfig checks it)."""
    if FIELDS[name].kind == "choice":
        return text
    if text == "none" and FIELDS[name].unset:  # a field that may be left unset
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def decode_config(text: str, data: str = "auto") -> RunConfig:
    """Parse :func:`encode_config`'s form; ValueError (the table's message for a bad value) names what is wrong."""
    if not isinstance(text, str) or not text or len(text) > 300:
        raise ValueError("a run configuration must be a short text like 'cnn~e:3'")
    arch, *pairs = text.split("~")
    values: dict[str, Any] = {"arch": arch, "data": data}
    for pair in pairs:
        key, sep, raw = pair.partition(":")
        if not sep or key not in _KEYS:
            raise ValueError(f"unknown configuration part {pair[:30]!r}")
        name = _KEYS[key]
        values[name] = _value(name, raw)
    return RunConfig(**values)  # checks every value against the table (ConfigError is a ValueError)


def _values(params: Mapping[str, Any], key: str) -> str | None:
    """One parameter as a string, or None; lists (repeated keys) take the last value."""
    value = params.get(key)
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if value is None:
        return None
    return str(value)


class _Reader:
    """Reads parameters, collecting one message per ignored value."""

    def __init__(self, params: Mapping[str, Any]):
        self.params = params
        self.messages: list[str] = []

    def text(self, key: str, limit: int = MAX_VALUE_LENGTH) -> str | None:
        value = _values(self.params, key)
        if value is not None and len(value) > limit:
            self.messages.append(f"Ignored the link's '{key}': it is too long.")
            return None
        return value

    def choice(self, key: str, choices, default):
        value = self.text(key)
        if value is None:
            return default
        if value in choices:
            return value
        self.messages.append(f"Ignored the link's '{key}' ({value[:40]!r}): expected one of {', '.join(choices)}.")
        return default

    def number(self, key: str, lo: float, hi: float, default, integer: bool = False):
        value = self.text(key)
        if value is None:
            return default
        try:
            number = int(value) if integer else float(value)
            if not lo <= number <= hi:
                raise ValueError
            return number
        except ValueError:
            kind = "a whole number" if integer else "a number"
            self.messages.append(f"Ignored the link's '{key}' ({value[:40]!r}): expected {kind} in [{lo:g}, {hi:g}].")
            return default

    def runs(self, key: str) -> tuple[RunRef, ...]:
        """A comma-separated list of runs, without repeats, cut to MAX_RUNS (with a message)."""
        runs: list[RunRef] = []
        listed = self.text(key, limit=50 * MAX_VALUE_LENGTH)  # a long list is cut to MAX_RUNS below
        if listed:
            entries = [e for e in listed.split(",") if e]
            if len(entries) > MAX_RUNS:
                self.messages.append(f"The link names {len(entries)} runs; only the first {MAX_RUNS} are shown.")
                entries = entries[:MAX_RUNS]
            for entry in entries:
                ref = self.run(key, entry)
                if ref is not None and ref.run_id not in [r.run_id for r in runs]:
                    runs.append(ref)
        return tuple(runs)

    def run(self, key: str, text: str | None = None) -> RunRef | None:
        text = self.text(key) if text is None else text
        if not text:
            return None
        run_id, _, compact = text.partition("~")
        if not RUN_ID.match(run_id):
            self.messages.append(f"Ignored a run in the link's '{key}' ({run_id[:40]!r}): not a run id.")
            return None
        config = None
        if compact:
            try:
                config = decode_config(compact)
            except ValueError as exc:
                self.messages.append(f"Ignored the configuration of run {run_id} in the link: {exc}.")
        return RunRef(run_id, config)


# -- Compare ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CompareView:
    runs: tuple[RunRef, ...] = ()
    mode: str = "side by side"
    metric: str = "val_accuracy"
    x: str = "epoch"
    smoothing: float = 0.0

    def to_params(self) -> dict[str, str]:
        params = {"runs": ",".join(ref.encode() for ref in self.runs)} if self.runs else {}
        defaults = CompareView()
        for name in ("mode", "metric", "x", "smoothing"):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                params[name] = f"{value:g}" if isinstance(value, float) else str(value)
        return params


def parse_compare(params: Mapping[str, Any]) -> tuple[CompareView, list[str]]:
    read = _Reader(params)
    view = CompareView(
        runs=read.runs("runs"),
        mode=read.choice("mode", COMPARE_MODES, "side by side"),
        metric=read.choice("metric", tuple(METRICS), "val_accuracy"),
        x=read.choice("x", tuple(X_AXES), "epoch"),
        smoothing=read.number("smoothing", 0.0, 0.95, 0.0),
    )
    return view, read.messages


# -- Inspect ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InspectView:
    run: RunRef | None = None
    second: RunRef | None = None
    true_class: int | None = None
    predicted_class: int | None = None
    normalized: bool = False

    def to_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.run is not None:
            params["run"] = self.run.encode()
        if self.second is not None:
            params["vs"] = self.second.encode()
        if self.true_class is not None:
            params["true"] = str(self.true_class)
        if self.predicted_class is not None:
            params["pred"] = str(self.predicted_class)
        if self.normalized:
            params["norm"] = "1"
        return params


def parse_inspect(params: Mapping[str, Any]) -> tuple[InspectView, list[str]]:
    read = _Reader(params)
    view = InspectView(
        run=read.run("run"),
        second=read.run("vs"),
        true_class=read.number("true", 0, 9, None, integer=True),
        predicted_class=read.number("pred", 0, 9, None, integer=True),
        normalized=read.choice("norm", ("0", "1"), "0") == "1",
    )
    return view, read.messages


# -- Filters ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FiltersView:
    index: int = 0
    preset: str = "identity"
    kernel: tuple[float, ...] | None = None  # row-major; None: the preset's
    padding: str = "valid"
    relu: bool = False

    def to_params(self) -> dict[str, str]:
        params = {"digit": str(self.index)} if self.index else {}
        if self.preset != "identity":
            params["preset"] = self.preset
        if self.kernel is not None:
            params["kernel"] = ",".join(f"{v:.6g}" for v in self.kernel)
        if self.padding != "valid":
            params["pad"] = self.padding
        if self.relu:
            params["relu"] = "1"
        return params


def parse_filters(params: Mapping[str, Any], n_images: int) -> tuple[FiltersView, list[str]]:
    read = _Reader(params)
    kernel = None
    text = read.text("kernel")
    if text:
        try:
            values = [float(v) for v in text.split(",")]
            size = int(round(len(values) ** 0.5))
            if size * size != len(values) or size > MAX_KERNEL_SIZE:
                raise ValueError(f"{len(values)} numbers do not make a square kernel of size 1, 3, 5 or 7")
            kernel = tuple(validate_kernel([values[r * size:(r + 1) * size] for r in range(size)]).ravel())
        except ValueError as exc:
            read.messages.append(f"Ignored the link's 'kernel': {exc}.")
            kernel = None
    view = FiltersView(
        index=read.number("digit", 0, n_images - 1, 0, integer=True),
        preset=read.choice("preset", tuple(PRESETS), "identity"),
        kernel=kernel,
        padding=read.choice("pad", PADDINGS, "valid"),
        relu=read.choice("relu", ("0", "1"), "0") == "1",
    )
    return view, read.messages


def link(base_url: str | None, params: Mapping[str, str]) -> str:
    """The full share link: the page's address with these parameters."""
    base = (base_url or "").split("?", 1)[0]
    query = urlencode(params, safe=",~:")
    return f"{base}?{query}" if query else base
