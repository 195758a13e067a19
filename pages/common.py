"""What every page shares: the store, the data source, run pickers, empty states.

Streamlit caching wraps library calls here; no training, file format or maths.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
import weakref
from pathlib import Path

import numpy as np
import streamlit as st

from mnistlab import RunStore
from mnistlab.datasets.mnist import Dataset, SourceInfo, default_source, load_source, resolve_source
from mnistlab.errors import MnistlabError
from mnistlab.runs.store import Run
from mnistlab.settings import Settings, load_settings
from mnistlab.views.text import code, md, plural

TRAIN_PAGE = "pages/train.py"

# Because a pages/ folder exists, Streamlit starts in its legacy multipage mode: until the
# first st.navigation call, a request for a page URL (a shared link to /compare on a fresh
# server) runs that page file alone, without streamlit_app.py's frame. Leave that mode and
# rerun, so every page always runs inside the frame.
from streamlit.runtime.pages_manager import PagesManager  # noqa: E402

if PagesManager.uses_pages_directory:
    PagesManager.uses_pages_directory = False
    st.rerun()


def _secrets() -> dict:
    """Streamlit's secrets as a dict ({} when there are none). Without a secrets file, Streamlit
    looks for one again, under a lock, at every read (raising each time): a look at the files
    first spares that to every page of every viewer (several reads a page run)."""
    from streamlit.runtime import secrets as streamlit_secrets

    if st.secrets is streamlit_secrets.secrets_singleton:  # not replaced (AppTest gives secrets so)
        try:
            from streamlit import config

            paths = config.get_option("secrets.files")
        except Exception:  # noqa: BLE001  (then ask Streamlit itself, below)
            paths = None
        if paths is not None and not any(os.path.exists(path) for path in paths):
            return {}
    try:
        return dict(st.secrets)
    except Exception:  # noqa: BLE001  (no secrets file: that is normal)
        return {}


def settings() -> Settings:
    """Hosting settings: environment variables, or the same names in Streamlit secrets."""
    return load_settings(secrets=_secrets())


@st.cache_resource(max_entries=8, show_spinner=False)
def _shared_store(root: str, hosting: Settings) -> RunStore:
    return RunStore(root, settings=hosting)


def store() -> RunStore:
    """The run store ($MNISTLAB_STORE or cache/runs), with this instance's settings.

    One object per store and settings for the whole server: every session and rerun shares
    its listing cache, which rereads a run's files only when they change on disk.
    """
    hosting = settings()
    return _shared_store(str(RunStore(settings=hosting).root), hosting)


def read_link(page: str) -> dict | None:
    """The page's query parameters when they came from outside (a shared link, the first
    visit), else None: what the page itself wrote is not read back."""
    params = st.query_params.to_dict()
    if st.session_state.get(f"{page}_link") == params:
        return None
    st.session_state[f"{page}_link"] = params
    return params


def write_link(page: str, params: dict[str, str]) -> None:
    """Put the page's view in the address bar, so copying it reproduces the view."""
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    st.session_state[f"{page}_link"] = params


def share_box(params: dict[str, str]) -> None:
    """The full share link, with a copy button."""
    from mnistlab.views.share import link

    st.code(link(st.context.url, params), language=None, wrap_lines=True)
    st.caption("Copy this link (or the address bar): it opens this exact view. Runs missing on the other side "
               "can be trained there with one click.")


def import_box() -> None:
    """Import a run bundle (.zip) into the store; hidden on a read-only instance."""
    if settings().read_only:
        return
    with st.expander("Import runs from a bundle (.zip)", icon=":material/upload:"):
        upload = st.file_uploader("Run bundle", type=["zip"], key="import_bundle",
                                  help="A .zip made by 'Run bundle' on Compare or `python -m mnistlab export`.")
        if upload is not None and st.button("Import", key="import_go", icon=":material/upload:"):
            from mnistlab.runs.bundles import import_bundle

            try:
                imported, present = import_bundle(store(), upload.getvalue())
            except (MnistlabError, OSError) as exc:  # a refused bundle, a read-only instance, the disk
                st.error(f"Nothing was imported: {md(exc, limit=1000)}", icon=":material/error:")
            else:  # said after the rerun that shows the imported runs (the store watch reruns anyway)
                st.session_state["import_done"] = f"Imported {plural(len(imported), 'run')}; {plural(len(present), 'was', 'were')} already here."
                st.rerun()
        done = st.session_state.pop("import_done", None)
        if done:
            st.success(done)


def resolve_refs(refs, known: dict) -> tuple[list, list]:
    """The local run ids a link's references mean (None where this store lacks the run), and
    the references it lacks. A reference matches by id, or by the run its configuration
    trains to here (another data source gives another id)."""
    from mnistlab.views.share import resolve

    here = store()
    if all(ref.run_id in known for ref in refs):  # the usual link: no second listing of the store
        return [ref.run_id for ref in refs], []
    try:
        aliases = listing(here).aliases()  # ids from before a store migration still open their runs
    except MnistlabError:  # a store that cannot be read is named by common.runs()
        aliases = {}
    resolved, missing = [], []
    for ref in refs:
        if ref.is_prefix:  # a short name: the one stored run whose id starts with it (else missing)
            matches = resolve(ref, known)
            local = matches[0] if len(matches) == 1 else None
        else:
            local = ref.run_id if ref.run_id in known else aliases.get(ref.run_id)
        if local is None and ref.config is not None:
            try:
                local_id = here.resolve(ref.config.replace(data=default_source())).run_id
            except MnistlabError:  # e.g. a hold-out larger than this machine's data: it is missing here
                local_id = None
            local = local_id if local_id in known else None
        resolved.append(local)
        if local is None:
            missing.append(ref)
    return resolved, missing


def missing_runs_box(missing: list, key: str) -> None:
    """Name the runs a link wants that this store lacks, and offer to train them."""
    if st.session_state.pop(f"{key}_missing_started", False):
        st.success("Training started: follow it on the Train page. The runs show here when done.")
    if not missing:
        return
    from mnistlab.runs import worker as jobs

    with st.container(border=True):
        st.markdown(f":material/link: **The link names {plural(len(missing), 'run')} this store does not have:**")
        for ref in missing:
            named = md(ref.config.label()) if ref.config else "(no configuration in the link)"
            st.markdown(f"- {code(ref.run_id)} {named}")
        trainable = [ref.config.replace(data=default_source()) for ref in missing if ref.config is not None]
        other_data = []  # the same configuration gives another id here: the link's runs used other data
        for ref, config in zip([r for r in missing if r.config is not None], trainable):
            try:
                if store().resolve(config).run_id != ref.run_id:
                    other_data.append(ref)
            except (MnistlabError, ValueError):
                other_data.append(ref)
        if other_data and not settings().read_only:
            st.caption(f":material/warning: {len(other_data)} of them were trained on other data than this "
                       f"machine's ({md(source_info().title)}): trained here, they use this data, so their "
                       "numbers will differ from the link's.")
        if settings().read_only:
            st.caption("This instance is read-only, so they cannot be trained here.")
        elif trainable and st.button(f"Train the {plural(len(trainable), 'missing run')}", key=f"{key}_train_missing",
                                     icon=":material/play_arrow:"):
            try:
                jobs.launch(store(), trainable)
            except (MnistlabError, OSError) as exc:
                st.error(md(exc, limit=1000), icon=":material/error:")
            else:
                st.session_state[f"{key}_missing"] = []
                st.session_state[f"{key}_missing_started"] = True
                st.rerun()


def show_link_messages(messages: list[str]) -> None:
    """The library's messages about a link's ignored values: plain text that quotes those
    values, so escaped here (see mnistlab.views.text)."""
    for message in messages:
        st.warning(md(message, limit=1000), icon=":material/link_off:")


@st.cache_resource(show_spinner="Looking for MNIST…")
def _source(source: str) -> SourceInfo:
    return resolve_source(source)


def source_info() -> SourceInfo:
    return _source(default_source())


@st.cache_resource(show_spinner="Loading MNIST…", max_entries=2)
def _dataset(kind: str, path: str, fingerprint: str) -> Dataset:
    return load_source(SourceInfo(kind, path, fingerprint, ""))


def dataset(info: SourceInfo | None = None) -> Dataset:
    """The images of a source (default: the app's), cached for the server's life."""
    info = info or source_info()
    return _dataset(info.kind, info.path, info.fingerprint)


#: How many test digits :func:`digit_images` keeps as images (some 300 bytes each).
MAX_DIGIT_IMAGES = 4096
_digit_images: dict[tuple[str, int], str] = {}


def digit_images(data: Dataset, indices) -> list[str]:
    """Test digits of ``data`` (by index) as small PNG images, dark on light as the galleries show
    them, in ``data:`` URLs for ``st.image``. Each is made once for every session (the newest
    :data:`MAX_DIGIT_IMAGES` are kept): ``st.image`` encodes every array it is given for each
    viewer, and keeps the result in memory for the session, while a URL is only sent."""
    from mnistlab.views import charts

    urls = []
    for index in indices:
        key = (data.fingerprint, int(index))
        url = _digit_images.get(key)
        if url is None:
            url = charts.png_url(255 - np.asarray(data.x_test[key[1]], dtype=np.uint8))
            _digit_images[key] = url
            while len(_digit_images) > MAX_DIGIT_IMAGES:
                try:
                    _digit_images.pop(next(iter(_digit_images)), None)
                except (RuntimeError, StopIteration):  # another session changed it meanwhile
                    break
        urls.append(url)
    return urls


def dataset_for_run(run: Run) -> Dataset | None:
    """The data a run was tested on, if this machine has it (same fingerprint)."""
    wanted = run.metrics.get("data", {}).get("fingerprint")
    info = source_info()
    if info.fingerprint == wanted:
        return dataset(info)
    try:
        other = _source("sample")
    except Exception:
        return None
    return dataset(other) if other.fingerprint == wanted else None


#: The longest a listing is reused while the store's state token stays the same (seconds): the
#: token moves with everything the store itself does (a run stored, imported, deleted, repaired:
#: each is a rename in its root), so this only bounds how long a file edited in place by hand
#: goes unseen.
LISTING_MAX_AGE = 5.0
_listings: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def listing(here: RunStore | None = None):
    """The store's listing (:meth:`RunStore.list_runs`), shared by every session and rerun while
    the store's state token stays the same (at most :data:`LISTING_MAX_AGE` seconds): listing
    300 runs stats every file of every run, some 15 ms, on each page of each viewer otherwise.
    Raises what ``list_runs`` raises. Shared, not copied: never change it."""
    here = store() if here is None else here
    token = here.state_token()
    now = time.monotonic()
    known = _listings.get(here)
    if known is not None and known[0] == token and now - known[1] < LISTING_MAX_AGE:
        return known[2]
    found = here.list_runs()
    _listings[here] = (token, now, found)
    return found


def runs(show_broken: bool = True, finished: bool = False) -> list[Run]:
    """Stored runs, newest first (``finished``: without diverged ones); broken folders are named
    in a warning, and a store that cannot be read is named in an error."""
    try:
        found = listing()
    except MnistlabError as exc:
        st.error(f"The run store cannot be read: {md(exc, limit=1000)}", icon=":material/error:")
        return []
    if show_broken:
        for broken in found.broken:
            st.warning(f"Skipped the broken run folder {code(broken.run_id)}: {md(broken.reason, limit=1000)}",
                       icon=":material/warning:")
    return [r for r in found.runs if r.is_finished] if finished else list(found.runs)


def active_count() -> int:
    """How many runs are queued or training (0 when the live state cannot be read)."""
    try:
        return len(store().live.active())
    except MnistlabError:
        return 0


def colors(all_runs: list[Run]) -> dict[str, str]:
    """One colour per run for every chart on every page: the colour Compare gave it (its place in
    the selection there, kept in the session), and for other runs the next free colours by age."""
    from mnistlab.views.charts import assign_slots, slot_color

    picked = st.session_state.get("run_slots", {})
    others = [r.run_id for r in sorted(all_runs, key=lambda r: r.metrics.get("created", "")) if r.run_id not in picked]
    slots = assign_slots([*picked, *others], picked)
    return {r.run_id: slot_color(slots[r.run_id]) for r in all_runs}


def swatch(color: str) -> str:
    """A small square of ``color`` (``#rrggbb``, from the palette) as an image for a table cell."""
    return ("data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='14' height='14'>"
            f"<rect width='14' height='14' rx='3' fill='%23{color.lstrip('#')}'/></svg>")


def sweep_names() -> list[str]:
    """The names of the store's sweeps (none when the live state cannot be read)."""
    try:
        return [sweep["name"] for sweep in store().live.sweeps()]
    except MnistlabError:
        return []


def sweep_run_ids(name: str) -> list[str]:
    try:
        return store().live.sweep_run_ids(name)
    except MnistlabError:
        return []


def store_size(all_runs: list[Run]) -> str:
    """The disk space the runs take, in words (computed once per state of the store)."""
    total = shared("store_size", all_runs, lambda: sum(r.disk_bytes() for r in all_runs))
    for unit in ("bytes", "KB", "MB", "GB"):
        if total < 1000 or unit == "GB":
            return f"{total:,.0f} {unit}" if unit == "bytes" else f"{total:,.1f} {unit}"
        total /= 1000


def run_state(chosen: list[Run]) -> tuple:
    """What a result about these runs depends on: each run's id and when it was written (a run's
    files are written once; one deleted and trained again is written anew)."""
    return tuple((r.run_id, r.metrics.get("created")) for r in chosen)


def _key(chosen: list[Run], options: dict) -> str:
    """:func:`run_state` and ``options`` as one short digest: the cache key. Streamlit hashes a
    cached function's arguments value by value, which for 300 runs costs milliseconds on every
    call; a digest of their text is hashed at once."""
    import hashlib

    text = repr((run_state(chosen), sorted(options.items())))
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


@functools.cache
def _sent_figure_class():
    import json

    import plotly.graph_objects as go
    import plotly.io

    class SentFigure(go.Figure):
        """A Plotly figure shared by every session (:func:`shared`): its JSON data are made once.

        ``st.plotly_chart`` turns a figure into a dict with :meth:`to_dict` (a deep copy: some
        10 ms for a figure of a dozen runs) and encodes that. Here :meth:`to_dict` gives data
        made once (plain JSON values, which encode fastest), so every viewer only encodes them.
        A change to the figure drops them (Plotly reports every change through the
        ``_send_*_msg`` hooks), but a shared figure must not be changed anyway.
        """

        def to_dict(self):
            sent = self.__dict__.get("_sent")
            if sent is None:
                sent = json.loads(plotly.io.to_json(super().to_dict(), validate=False))
                self._sent = sent
            return dict(sent)  # a new outer dict: copying or pickling the figure adds keys to it

        def _changed(self, *args, **kwargs):
            self.__dict__.pop("_sent", None)

        _send_addTraces_msg = _send_animate_msg = _send_deleteTraces_msg = _send_moveTraces_msg = _changed
        _send_relayout_msg = _send_restyle_msg = _send_update_msg = _changed

    SentFigure.__module__, SentFigure.__qualname__ = __name__, "SentFigure"  # copied and pickled by name
    return go.Figure, SentFigure


def __getattr__(name: str):
    if name == "SentFigure":  # made on first use: importing Plotly is not free
        return _sent_figure_class()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _ready_to_send(result):
    """``result`` with each Plotly figure in it (itself, or an item of a tuple or list) made a
    :class:`SentFigure <_sent_figure_class>` with its JSON data ready."""
    if type(result) in (tuple, list):
        return type(result)(_ready_to_send(item) for item in result)
    if type(result).__module__.startswith("plotly.") and type(result).__name__ == "Figure":
        plain, sent = _sent_figure_class()
        if type(result) is plain:
            result.__class__ = sent  # the same object and data, with the to_dict above
            result.to_dict()
    return result


@st.cache_resource(max_entries=64, show_spinner=False)
def _shared(what: str, key: str, _compute):
    return _ready_to_send(_compute())


def shared(what: str, chosen: list[Run], compute, **options):
    """``compute()`` done once for every session and rerun of the server that asks ``what`` about
    the same runs in the same state, with the same ``options`` (hashable: everything else the
    result depends on). Bounded (64 results); the result is shared, not copied: never change it.
    A Plotly figure in the result (or in a tuple or list it is) also has its JSON data made once,
    so ``st.plotly_chart`` only sends them to each viewer."""
    return _shared(what, _key(chosen, options), compute)


@st.cache_resource(show_spinner=False)
def _worker_thread():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnistlab-background")


@st.cache_resource(max_entries=16, show_spinner=False)
def _background(what: str, key: str, _compute):
    return _worker_thread().submit(_compute)


def background(what: str, chosen: list[Run], compute, **options):
    """Like :func:`shared`, but ``compute()`` runs in one server-wide worker thread: returns its
    ``Future`` at once, so a slow estimate never holds up the page (see :func:`when_done`)."""
    return _background(what, _key(chosen, options), compute)


def when_done(job, draw, waiting: str) -> None:
    """Draw ``draw(result)`` once ``job`` (a Future) is done; until then a caption, polled twice a
    second in a fragment that reruns the page once when the result is in (then polling stops)."""
    if job.done():
        try:
            result = job.result()
        except Exception as exc:  # noqa: BLE001  (an estimate that failed must not take the page down)
            st.caption(f":material/error: {md(waiting, limit=200)} failed: {md(exc, limit=500)}")
        else:
            draw(result)
        return

    def poll() -> None:
        if job.done():
            st.rerun(scope="app")
        st.caption(f":material/hourglass_top: {md(waiting, limit=200)}…")

    st.fragment(poll, run_every=0.5)()


def empty_state(what: str) -> None:
    st.info(f"No finished runs yet, so there is nothing to {what}. Train one first: the defaults are the "
            "Keras recipe's, so one click on **Train** does something meaningful.", icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/model_training:")


def run_picker(label: str, choices: list[Run], key: str, index: int = 0, allow_none: bool = False,
               help: str | None = None) -> Run | None:
    """A selectbox of runs; with ``allow_none`` its first option is "none" (returned as None)."""
    options = ([""] if allow_none else []) + [r.run_id for r in choices]  # "": none (a None state shows blank)
    if st.session_state.get(key, options[0] if options else None) not in options:  # e.g. a link's run elsewhere
        st.session_state.pop(key, None)
    names = {r.run_id: f"{r.label}  ·  test acc {r.metrics['test_accuracy']:.4f}  ·  {r.run_id[:6]}" for r in choices}
    start = {} if key in st.session_state else {"index": min(index, len(options) - 1)}  # state wins when set
    chosen = st.selectbox(label, options, key=key, help=help,
                          format_func=lambda rid: "— none —" if rid == "" else names[rid], **start)
    return next((r for r in choices if r.run_id == chosen), None)


def sidebar() -> None:
    info = source_info()
    with st.sidebar:
        st.markdown("### mnistlab")
        st.caption("Train, compare and understand the classic Keras MNIST models.")
        icon = ":material/check_circle:" if info.kind in ("file", "keras") else ":material/info:"
        st.markdown(f"{icon} **Data:** {md(info.title)}")
        st.caption(md(info.reason, limit=1000))
        if info.kind == "sample":
            st.caption("For the full MNIST (60,000 + 10,000 images), start the app with "
                       "`MNISTLAB_MNIST=/path/to/mnist.npz`.")
        active = active_count()
        busy = f":material/pending: **{plural(active, 'run')} in progress** — see Train  \n" if active else ""
        if settings().read_only:
            busy += ":material/visibility: Read-only: browse, compare, inspect and explore filters.  \n"
        root = store().root
        if root.exists() and not root.is_dir():  # one element either way: no stale leftovers
            st.error(f"The run store {code(root)} is a file, not a folder, so no runs can be read or stored. "
                     "Point `MNISTLAB_STORE` at a folder and restart.", icon=":material/error:")
        else:
            st.caption(f"{busy}Store: {code(root)}")


PLOTLY_LOADER_STYLE = "<style>.st-key-plotly_loader{display:none}</style>"


@functools.cache
def _plotly_loader() -> str | None:
    """A script that imports Streamlit's own Plotly chunk (some 4.7 MB of JavaScript) by the URL its chart
    elements use, once the page has been drawn (1.5 s after the script arrives, at an idle moment). The chunk's name is read from Streamlit's static
    folder (it changes with every release); None when that folder does not hold exactly one such file."""
    found = [path.name for path in (Path(st.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js")]
    if len(found) != 1 or not re.fullmatch(r"PlotlyChart\.[A-Za-z0-9_-]+\.js", found[0]):
        return None
    return ("<script>(() => {"
            "const main = document.querySelector('script[type=module][src*=\"/static/js/index.\"]');"
            f"const load = () => import(new URL({json.dumps('./' + found[0])}, main ? main.src : document.baseURI))"
            ".catch(() => {});"
            # not at the first idle moment: a page still fetching its own elements' code is idle too
            "setTimeout(() => window.requestIdleCallback ? requestIdleCallback(load, {timeout: 3000}) : load(), 1500);"
            "})();</script>")


def load_plotly_when_idle() -> None:
    """Load Plotly's JavaScript once per browser session, after the first page is drawn: a page that opens
    on a chart loads it anyway, and the first visit to one after a page without charts (Train) otherwise
    waits about a second for it (fetching and evaluating 4.7 MB). Hidden: the element takes no space."""
    loader = _plotly_loader()
    if loader is None or st.session_state.get("_plotly_loading"):
        return
    st.session_state["_plotly_loading"] = True
    st.html(PLOTLY_LOADER_STYLE)
    with st.container(key="plotly_loader"):
        st.html(loader, unsafe_allow_javascript=True)
