"""Share links: a page's view as URL query parameters, and back, safely.

Each view (Compare, Inspect, Filters) turns into a flat ``dict[str, str]`` for
``st.query_params`` and is parsed back from untrusted parameters. Parsing never raises:
it returns the view it could read plus one short message per thing it ignored (unknown run
ids, malformed numbers, path fragments, oversized lists, wrong types).

A link names each run by its id, or by a short unique prefix of it (4 to 16 hex characters,
:func:`mnistlab.analysis.comparison.unique_prefixes`; the page resolves it with :func:`resolve`), *and*, while the whole
query stays within :data:`LINK_BUDGET` characters, carries its compact configuration
(``cnn~e:3~b:200``), so a recipient whose store lacks the run can train exactly it. Past
the budget a Compare link names its runs only (:meth:`CompareView.link_fit` says so). The
data source is never in a link: paths mean nothing on another machine.

Values read from a link (the search text above all) are untrusted plain text: this module
only parses them; pages must show them escaped, never as Markdown or HTML.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping
from urllib.parse import urlencode

from mnistlab.analysis.filters import MAX_KERNEL_SIZE, PADDINGS, PRESETS, validate_kernel
from mnistlab.runs.config import FIELDS, RunConfig, arch_field
from mnistlab.views.charts import METRICS, X_AXES

#: The most runs a Compare link names; a longer list keeps the first ones, with a message.
MAX_RUNS = 300
#: The cap of the run lists other views read (the Playground loads every model it names).
MAX_LIST_RUNS = 12
#: The most characters of a whole query string (as :func:`link` writes it) a Compare link may take.
LINK_BUDGET = 8000
MAX_VALUE_LENGTH = 2000
MAX_TEXT_LENGTH = 100  # the search text and the sweep name
RUN_ID = re.compile(r"^[0-9a-f]{16}$")
#: A run reference in a link: a full id or a prefix of at least 4 hex characters.
RUN_REF = re.compile(r"^[0-9a-f]{4,16}$")
MIN_PREFIX = 4
COMPARE_MODES = ("panels", "side by side")
#: Old mode names still read from old links (silently), and what they mean now.
OLD_COMPARE_MODES = {"overlay": "panels"}
BANDS = ("std", "minmax")
STATUSES = ("finished", "diverged")
#: At most this many ignored runs get a message each; the rest are counted in one more.
_MAX_RUN_MESSAGES = 5
# Configuration fields a link may carry: those with a short key in the table (never ``data``;
# ``arch`` leads the compact form without a key).
_KEYS = {field.link: name for name, field in FIELDS.items() if field.link}


@dataclasses.dataclass(frozen=True)
class RunRef:
    """A run named by a link: its id, and its configuration when the link carries one."""

    run_id: str  # as the link gives it: a full 16-hex id or a prefix of at least 4 hex characters
    config: RunConfig | None = None

    @property
    def is_prefix(self) -> bool:
        """Whether the link names the run by a prefix of its id (the page resolves it)."""
        return len(self.run_id) < 16

    def encode(self, name: str | None = None, config: bool = True) -> str:
        """``name`` (default: the id) and, when ``config`` and known, ``~`` and the compact configuration."""
        text = self.run_id if name is None else name
        return text if self.config is None or not config else f"{text}~{encode_config(self.config)}"


def resolve(ref: RunRef | str, run_ids) -> tuple[str, ...]:
    """The ids among ``run_ids`` that a link's reference names: one, none (unknown) or several (ambiguous)."""
    text = ref.run_id if isinstance(ref, RunRef) else ref
    if not isinstance(text, str) or not RUN_REF.match(text):
        return ()
    return tuple(run_id for run_id in run_ids if run_id.startswith(text))


def query_length(params: Mapping[str, str]) -> int:
    """The characters these parameters take in a link's query string (as :func:`link` writes them)."""
    return len(urlencode(params, safe=",~:"))


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
    try:
        value = params.get(key)
    except Exception:  # noqa: BLE001  # not a mapping, or one that fails: as if the key were absent
        return None
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if value is None:
        return None
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001  # parsing never raises: an unprintable value is absent
        return None


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

    def flag(self, key: str) -> bool:
        """``1`` or ``0`` (default: off)."""
        return self.choice(key, ("0", "1"), "0") == "1"

    def choices(self, key: str, allowed, words: str | None = None) -> tuple[str, ...]:
        """A comma-separated list of allowed values, without repeats; others dropped with one message."""
        return self._list(key, lambda v: v if v in allowed else None,
                          words or "one of " + ", ".join(allowed))

    def numbers(self, key: str, lo: int, hi: int) -> tuple[int, ...]:
        """A comma-separated list of whole numbers in [lo, hi], without repeats; others dropped with one message."""
        def one(text):
            try:
                number = int(text)
            except ValueError:
                return None
            return number if lo <= number <= hi else None
        return self._list(key, one, f"whole numbers in [{lo}, {hi}]")

    def _list(self, key, convert, words) -> tuple:
        listed = self.text(key)
        if not listed:
            return ()
        kept, dropped = [], []
        for entry in listed.split(","):
            if not entry:
                continue
            value = convert(entry)
            if value is None:
                dropped.append(entry)
            elif value not in kept:
                kept.append(value)
        if dropped:
            shown = ", ".join(repr(v[:40]) for v in dropped[:3]) + (f" and {len(dropped) - 3} more"
                                                                    if len(dropped) > 3 else "")
            self.messages.append(f"Ignored {shown} in the link's '{key}': expected {words}.")
        return tuple(kept)

    def runs(self, key: str, limit: int = MAX_LIST_RUNS, prefix: bool = False) -> tuple[RunRef, ...]:
        """A comma-separated list of runs, without repeats, cut to ``limit`` (with a message).

        ``prefix``: accept a prefix of an id (4 to 16 hex characters) as well as a full id.
        """
        runs: list[RunRef] = []
        listed = self.text(key, limit=50 * MAX_VALUE_LENGTH)  # a long list is cut to the limit below
        if listed:
            entries = [e for e in listed.split(",") if e]
            if len(entries) > limit:
                self.messages.append(f"The link names {len(entries):,} runs; only the first {limit} are kept "
                                     f"(a link holds at most {limit} runs).")
                entries = entries[:limit]
            inner = _Reader({})
            seen: set[str] = set()
            for entry in entries:
                ref = inner.run(key, entry, prefix=prefix)
                if ref is not None and ref.run_id not in seen:
                    seen.add(ref.run_id)
                    runs.append(ref)
            self.messages.extend(inner.messages[:_MAX_RUN_MESSAGES])
            if len(inner.messages) > _MAX_RUN_MESSAGES:
                self.messages.append(f"Ignored {len(inner.messages) - _MAX_RUN_MESSAGES} more run references or "
                                     f"configurations in the link's '{key}'.")
        return tuple(runs)

    def run(self, key: str, text: str | None = None, prefix: bool = False) -> RunRef | None:
        """One run reference, ``<id>`` or ``<id>~<compact configuration>``; ``prefix``: the id may be a prefix."""
        text = self.text(key) if text is None else text
        if not text:
            return None
        run_id, _, compact = text.partition("~")
        if not (RUN_REF if prefix else RUN_ID).match(run_id):
            what = "4 to 16 lowercase hex characters" if prefix else "16 lowercase hex characters"
            self.messages.append(f"Ignored a run in the link's '{key}' ({run_id[:40]!r}): not a run id ({what}).")
            return None
        config = None
        if compact:
            try:
                config = decode_config(compact)
            except ValueError as exc:
                self.messages.append(f"Ignored the configuration of run {run_id} in the link: {exc}.")
        return RunRef(run_id, config)


# -- Compare ---------------------------------------------------------------------------
#: CompareView's fields after ``runs``, with their link keys, in the order links write them.
COMPARE_KEYS = {
    "mode": "mode", "metric": "metric", "x": "x", "smoothing": "smoothing", "log_y": "logy",
    "full_range": "full", "groups": "groups", "band": "band", "color_by": "color", "tasks": "ft", "archs": "fa",
    "optimizers": "fo", "batch_sizes": "fb", "statuses": "fs", "search": "q", "sweep": "sweep",
}
#: What Compare may colour runs by: each run apart, or one of the configuration fields.
COLOR_BY = ("run", *FIELDS)


@dataclasses.dataclass(frozen=True)
class CompareView:
    """The Compare page's view. Lists may be given as lists; they are kept as tuples."""

    runs: tuple[RunRef, ...] = ()
    mode: str = "panels"  # "panels": one panel per metric, all runs overlaid; "side by side": one panel per run
    metric: str = "val_accuracy"  # old links' overlay metric; read and written, unused by the page
    x: str = "epoch"
    smoothing: float = 0.0
    log_y: bool = False
    full_range: bool = False  # every value, not the robust range
    groups: bool = False  # seeds of one configuration as one group
    band: str = "std"  # a group's band: mean ± std or min..max
    color_by: str = "run"
    tasks: tuple[str, ...] = ()  # filters; empty: all
    archs: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    search: str = ""
    sweep: str = ""

    def __post_init__(self):
        for name in ("runs", "tasks", "archs", "optimizers", "batch_sizes", "statuses"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def _settings(self) -> dict[str, str]:
        """The link parameters of everything but the runs, each only when not the default."""
        params: dict[str, str] = {}
        defaults = CompareView()
        for name, key in COMPARE_KEYS.items():
            value = getattr(self, name)
            if value == getattr(defaults, name):
                continue
            if isinstance(value, bool):
                params[key] = "1" if value else "0"
            elif isinstance(value, float):
                params[key] = f"{value:g}"
            elif isinstance(value, tuple):
                params[key] = ",".join(str(v) for v in value)
            else:
                params[key] = str(value)
        return params

    def link_fit(self, names: Mapping[str, str] | None = None,
                 budget: int = LINK_BUDGET) -> tuple[dict[str, str], bool]:
        """The link parameters within ``budget`` characters, and whether run configurations were left out.

        Runs are written by ``names[run_id]`` (a short unique prefix of the id) where given, else by
        their id; with their compact configurations while the whole query fits in ``budget``,
        else without any (a recipient without the runs then needs a bundle). ValueError when
        even that does not fit, or when a name is not a prefix of its run's id.
        """
        names = names or {}
        labels = []
        for ref in self.runs:
            name = names.get(ref.run_id)
            if name is None:
                name = ref.run_id
            elif not isinstance(name, str) or not RUN_REF.match(name) or not ref.run_id.startswith(name):
                raise ValueError(f"the link name {name!r} of run {ref.run_id!r} is not a prefix of its id "
                                 f"of 4 to 16 hex characters")
            labels.append(name)
        settings = self._settings()

        def params(configs: bool) -> dict[str, str]:
            runs = ",".join(ref.encode(label, config=configs) for ref, label in zip(self.runs, labels))
            return {"runs": runs, **settings} if runs else dict(settings)

        full = params(True)
        if query_length(full) <= budget:
            return full, False
        bare = params(False)
        if query_length(bare) <= budget:
            return bare, any(ref.config is not None for ref in self.runs)
        raise ValueError(f"a link to these {len(self.runs)} runs takes {query_length(bare):,} characters even "
                         f"without their configurations, more than the {budget:,} a link may take; share the "
                         f"HTML report or a bundle instead")

    def to_params(self, names: Mapping[str, str] | None = None, budget: int = LINK_BUDGET) -> dict[str, str]:
        """The link parameters (see :meth:`link_fit`)."""
        return self.link_fit(names, budget)[0]


def parse_compare(params: Mapping[str, Any]) -> tuple[CompareView, list[str]]:
    """The Compare view a link's parameters name, and one message per thing ignored. Never raises."""
    read = _Reader(params)
    mode = read.text("mode")
    if mode in OLD_COMPARE_MODES:
        mode = OLD_COMPARE_MODES[mode]
    elif mode is not None:
        mode = read.choice("mode", COMPARE_MODES, "panels")
    view = CompareView(
        runs=read.runs("runs", limit=MAX_RUNS, prefix=True),
        mode=mode or "panels",
        metric=read.choice("metric", tuple(METRICS), "val_accuracy"),
        x=read.choice("x", tuple(X_AXES), "epoch"),
        smoothing=read.number("smoothing", 0.0, 0.95, 0.0),
        log_y=read.flag("logy"),
        full_range=read.flag("full"),
        groups=read.flag("groups"),
        band=read.choice("band", BANDS, "std"),
        color_by=read.choice("color", COLOR_BY, "run"),
        tasks=read.choices("ft", FIELDS["task"].choices),
        archs=read.choices("fa", arch_field().choices),
        optimizers=read.choices("fo", FIELDS["optimizer"].choices),
        batch_sizes=read.numbers("fb", int(FIELDS["batch_size"].lo), int(FIELDS["batch_size"].hi)),
        statuses=read.choices("fs", STATUSES),
        search=read.text("q", limit=MAX_TEXT_LENGTH) or "",
        sweep=read.text("sweep", limit=MAX_TEXT_LENGTH) or "",
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
    epoch: int | None = None  # the model at the end of this epoch; None: the run's kept model

    def to_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.epoch is not None:
            params["epoch"] = str(self.epoch)
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
        run=read.run("run", prefix=True),
        second=read.run("vs", prefix=True),
        true_class=read.number("true", 0, 9, None, integer=True),
        predicted_class=read.number("pred", 0, 9, None, integer=True),
        normalized=read.choice("norm", ("0", "1"), "0") == "1",
        epoch=read.number("epoch", 1, FIELDS["epochs"].hi, None, integer=True),
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
