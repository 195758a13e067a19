import pytest

from mnistlab.analysis.comparison import unique_prefixes
from mnistlab.runs.config import FIELDS, RunConfig
from mnistlab.views.share import (
    LINK_BUDGET,
    MAX_RUNS,
    RUN_REF,
    CompareView,
    FiltersView,
    InspectView,
    RunRef,
    decode_config,
    encode_config,
    link,
    parse_compare,
    parse_filters,
    parse_inspect,
    query_length,
    resolve,
)

CONFIGS = [
    RunConfig(),
    RunConfig(arch="mlp", task="parity", epochs=3, optimizer="adam", learning_rate=0.0005),
    RunConfig(arch="cnn_dropout", batch_size=200, validation="fraction", validation_size=0.2, patience=10),
    RunConfig(arch="deep_cnn", validation="test", train_size=1000, seed=42),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_a_config_survives_the_compact_link_form_with_its_run_id(config):
    text = encode_config(config)
    assert "data" not in text and len(text) < 120
    assert decode_config(text) == config  # the same values, so the same run id on the same data


def test_the_default_config_is_just_its_architecture():
    assert encode_config(RunConfig()) == "cnn"
    assert encode_config(RunConfig(arch="mlp", epochs=3)) == "mlp~e:3"


def test_links_use_the_tables_short_keys_which_never_change():
    keys = {name: field.link for name, field in FIELDS.items() if field.link}
    assert keys == {"task": "t", "epochs": "e", "batch_size": "b", "optimizer": "o", "learning_rate": "lr",
                    "validation": "v", "validation_size": "vs", "train_size": "n", "patience": "p", "seed": "s",
                    "precision": "pr"}
    assert encode_config(RunConfig(arch="mlp", task="parity", batch_size=200, optimizer="adam", learning_rate=0.01,
                                   validation="fraction", validation_size=0.2, train_size=1000, patience=5, seed=7)) \
        == "mlp~t:parity~b:200~o:adam~lr:0.01~v:fraction~vs:0.2~n:1000~p:5~s:7"


@pytest.mark.parametrize("name", [name for name, field in FIELDS.items() if field.link and name != "validation_size"])
def test_a_link_value_out_of_range_gets_the_tables_message(name):
    field = FIELDS[name]
    value = "nope" if field.kind == "choice" else int(field.hi) + 1
    expected = f"{name} must be {field.allowed}, got {value!r}"
    with pytest.raises(ValueError) as info:
        decode_config(f"cnn~{field.link}:{value}")
    assert str(info.value) == expected
    view, messages = parse_compare({"runs": f"0123456789abcdef~cnn~{field.link}:{value}"})
    assert view.runs == (RunRef("0123456789abcdef"),)  # the run stays, its configuration is ignored
    assert any(expected in m for m in messages), messages


def test_a_link_value_that_is_no_number_gets_the_tables_message():
    with pytest.raises(ValueError) as info:
        decode_config("cnn~e:banana~p:none")
    assert str(info.value) == f"epochs must be {FIELDS['epochs'].allowed}, got 'banana'"
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2147483647\], got 'none'"):
        decode_config("cnn~s:none")  # only a field that may be unset reads 'none' as unset


def test_compare_view_round_trips_through_query_parameters():
    view = CompareView(runs=(RunRef("0123456789abcdef", CONFIGS[1]), RunRef("fedcba9876543210", CONFIGS[2])),
                       mode="side by side", metric="loss", x="elapsed", smoothing=0.6)
    back, messages = parse_compare(view.to_params())
    assert messages == [] and back == view


def test_inspect_and_filters_views_round_trip():
    inspect = InspectView(run=RunRef("0123456789abcdef", CONFIGS[0]), second=RunRef("fedcba9876543210"),
                          true_class=3, predicted_class=5, normalized=True)
    assert parse_inspect(inspect.to_params()) == (inspect, [])
    filters = FiltersView(index=42, preset="sobel x", kernel=(0, 1, 0, 1, -4, 1, 0, 1, 0), padding="same", relu=True)
    assert parse_filters(filters.to_params(), 1000) == (filters, [])
    assert parse_filters({}, 1000) == (FiltersView(), [])


HOSTILE = [
    ({"runs": "../../etc/passwd"}, "not a run id"),
    ({"runs": "/abs/path,C:\\windows"}, "not a run id"),
    ({"runs": ",".join(f"{i:016x}" for i in range(MAX_RUNS + 100))}, f"only the first {MAX_RUNS}"),
    ({"runs": "0123456789abcdef~cnn~e:banana"}, "Ignored the configuration of run 0123456789abcdef"),
    ({"runs": "0123456789abcdef~cnn~data:/etc/passwd"}, "unknown configuration part"),
    ({"mode": "<script>"}, "expected one of panels, side by side"),
    ({"smoothing": "1e9"}, "expected a number in [0, 0.95]"),
    ({"smoothing": ["0.1", "nan"]}, "expected a number"),
    ({"x": "x" * 5000}, "too long"),
]


@pytest.mark.parametrize("params, message", HOSTILE)
def test_hostile_compare_parameters_are_ignored_with_a_message(params, message):
    view, messages = parse_compare(params)
    assert any(message in m for m in messages), messages
    assert len(view.runs) <= MAX_RUNS
    assert all(RUN_REF.match(ref.run_id) for ref in view.runs)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"run": "../x"}, "not a run id"),
        ({"true": "12"}, "whole number in [0, 9]"),
        ({"pred": "3.5"}, "whole number"),
        ({"norm": "yes"}, "expected one of 0, 1"),
    ],
)
def test_hostile_inspect_parameters_are_ignored_with_a_message(params, message):
    view, messages = parse_inspect(params)
    assert any(message in m for m in messages)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"kernel": "1,2,3"}, "square kernel"),
        ({"kernel": "1,2,nan,4,5,6,7,8,9"}, "finite"),
        ({"kernel": "a,b,c,d"}, "could not convert"),
        ({"kernel": ",".join(["1"] * 81)}, "square kernel"),
        ({"digit": "-1"}, "whole number in [0, 999]"),
        ({"digit": "100000"}, "whole number in [0, 999]"),
        ({"preset": "rm -rf"}, "expected one of identity"),
        ({"pad": "full"}, "expected one of valid, same"),
    ],
)
def test_hostile_filters_parameters_are_ignored_with_a_message(params, message):
    view, messages = parse_filters(params, 1000)
    assert any(message in m for m in messages), messages
    assert 0 <= view.index < 1000


def test_link_joins_the_page_address_and_the_view():
    url = link("http://host:8501/compare?old=1", {"runs": "0123456789abcdef~mlp~e:3", "mode": "overlay"})
    assert url == "http://host:8501/compare?runs=0123456789abcdef~mlp~e:3&mode=overlay"
    assert link("http://host/compare", {}) == "http://host/compare"


# -- Compare links for many runs -----------------------------------------------------------
def _ids(n: int) -> list[str]:
    """``n`` distinct run ids that look like hashes (prefixes then need 4 or 5 characters)."""
    import hashlib

    return [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(n)]


def _refs(n: int, config=lambda i: RunConfig(arch="cnn", seed=i)) -> tuple[RunRef, ...]:
    return tuple(RunRef(run_id, config(i)) for i, run_id in enumerate(_ids(n)))


def test_a_compare_view_with_every_field_round_trips():
    view = CompareView(runs=(RunRef("0123456789abcdef", CONFIGS[1]), RunRef("fedcba9876543210")),
                       mode="side by side", metric="loss", x="elapsed", smoothing=0.35, log_y=True,
                       full_range=True, groups=True, band="minmax", color_by="optimizer",
                       tasks=("parity",), archs=("mlp", "cnn_dropout"), optimizers=("adam", "sgd"),
                       batch_sizes=(32, 200), statuses=("finished", "diverged"),
                       search="lr 0.01 & <b>adam</b> ~ 100%", sweep="lr-sweep, part 2")
    params = view.to_params()
    assert {"mode", "metric", "x", "smoothing", "logy", "full", "groups", "band", "color", "ft", "fa", "fo", "fb",
            "fs", "q", "sweep"} <= set(params)
    assert parse_compare(params) == (view, [])
    # through a real query string, as the browser sends it back
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(link("http://host/compare", params)).query)
    assert parse_compare(query) == (view, [])


def test_defaults_write_no_parameters_and_lists_become_tuples():
    assert CompareView().to_params() == {}
    assert parse_compare({}) == (CompareView(), [])
    view = CompareView(tasks=["digits"], batch_sizes=[64])
    assert view.tasks == ("digits",) and view.batch_sizes == (64,)
    assert view.to_params() == {"ft": "digits", "fb": "64"}


def test_old_links_still_open():
    params = {"runs": "0123456789abcdef~mlp~t:parity~e:3~o:adam~lr:0.0005,fedcba9876543210~cnn_dropout~b:200",
              "mode": "overlay", "metric": "loss", "smoothing": "0.6"}
    view, messages = parse_compare(params)
    assert messages == []
    assert view.mode == "panels" and view.metric == "loss" and view.smoothing == 0.6
    assert view.runs == (RunRef("0123456789abcdef", CONFIGS[1]), RunRef("fedcba9876543210",
                                                                        RunConfig(arch="cnn_dropout", batch_size=200)))
    assert not any(ref.is_prefix for ref in view.runs)
    assert parse_compare({"mode": "side by side"})[0].mode == "side by side"


def test_300_runs_named_by_prefixes_fit_and_parse_back_to_the_same_prefixes():
    runs = _refs(300, lambda i: None)
    names = unique_prefixes(*[[ref.run_id for ref in runs]] * 2)
    assert all(4 <= len(name) <= 16 for name in names.values())
    params, left_out = CompareView(runs=runs, mode="side by side").link_fit(names)
    assert not left_out and query_length(params) <= LINK_BUDGET
    view, messages = parse_compare(params)
    assert messages == []
    assert [ref.run_id for ref in view.runs] == [names[ref.run_id] for ref in runs]
    assert all(ref.is_prefix for ref in view.runs)
    assert all(resolve(ref, names) == (runs[i].run_id,) for i, ref in enumerate(view.runs))


def test_300_runs_whose_configurations_do_not_fit_are_named_without_them():
    def rich(i):
        return RunConfig(arch="cnn_dropout", task="parity", epochs=12, optimizer="adam", learning_rate=0.0005,
                         batch_size=128, seed=i)

    runs = _refs(300, rich)
    for names in (None, unique_prefixes(*[[ref.run_id for ref in runs]] * 2)):
        params, left_out = CompareView(runs=runs).link_fit(names)
        assert left_out and "~" not in params["runs"]
        assert query_length(params) <= LINK_BUDGET
        assert CompareView(runs=runs).to_params(names) == params
        view, messages = parse_compare(params)
        assert messages == [] and len(view.runs) == 300 and all(ref.config is None for ref in view.runs)
    # full ids: 300 x 16 characters and the commas still fit
    params, left_out = CompareView(runs=runs).link_fit()
    assert [ref.run_id for ref in parse_compare(params)[0].runs] == [ref.run_id for ref in runs]


def test_20_runs_keep_their_configurations():
    runs = _refs(20)
    view = CompareView(runs=runs, groups=True)
    params, left_out = view.link_fit()
    assert not left_out and params["runs"].count("~") == 20 * 2 - 1  # "~cnn~s:N" after each id; seed 0 is the default
    assert parse_compare(params) == (view, [])
    assert view.to_params() == params


def test_a_view_that_cannot_fit_even_without_configurations_raises():
    with pytest.raises(ValueError, match="even without their configurations.*HTML report or a bundle"):
        CompareView(runs=_refs(300)).link_fit(budget=1000)
    with pytest.raises(ValueError, match="not a prefix"):
        CompareView(runs=_refs(2)).link_fit({_ids(2)[0]: "zzzz"})


def test_over_300_runs_keep_the_first_300_with_a_message():
    ids = _ids(301)
    view, messages = parse_compare({"runs": ",".join(ids)})
    assert [ref.run_id for ref in view.runs] == ids[:300]
    assert len(messages) == 1 and "301 runs" in messages[0] and "first 300" in messages[0]


@pytest.mark.parametrize("bad", ["abc", "a", "ABCD", "abcg", "0123456789abcdef0", "-1234", "12 34"])
def test_a_run_reference_that_is_short_or_not_hex_is_ignored_with_a_message(bad):
    view, messages = parse_compare({"runs": f"{bad},abcd,0123456789abcdef"})
    assert [ref.run_id for ref in view.runs] == ["abcd", "0123456789abcdef"]
    assert view.runs[0].is_prefix and not view.runs[1].is_prefix
    assert len(messages) == 1 and "not a run id (4 to 16 lowercase hex characters)" in messages[0]


def test_inspect_accepts_prefixes():
    view, messages = parse_inspect({"run": "abcd~mlp~e:3", "vs": "0123456789a"})
    assert messages == [] and view.run == RunRef("abcd", RunConfig(arch="mlp", epochs=3))
    assert view.second.run_id == "0123456789a" and view.second.is_prefix
    assert parse_inspect({"run": "abc"})[0].run is None


@pytest.mark.parametrize(
    "key, value, kept, allowed",
    [
        ("ft", "digits,letters", ("digits",), "expected one of digits, parity"),
        ("fa", "cnn,resnet,mlp", ("cnn", "mlp"), "expected one of mlp, cnn, deep_cnn"),
        ("fo", "adam,lion", ("adam",), "expected one of sgd, adam, rmsprop"),
        ("fb", "32,0,abc,60001,200", (32, 200), "expected whole numbers in [1, 60000]"),
        ("fs", "finished,running", ("finished",), "expected one of finished, diverged"),
    ],
)
def test_bad_filter_values_are_dropped_with_a_message_naming_the_allowed_values(key, value, kept, allowed):
    view, messages = parse_compare({key: value})
    field = {"ft": "tasks", "fa": "archs", "fo": "optimizers", "fb": "batch_sizes", "fs": "statuses"}[key]
    assert getattr(view, field) == kept
    assert len(messages) == 1 and allowed in messages[0] and f"'{key}'" in messages[0], messages


@pytest.mark.parametrize(
    "params, message",
    [
        ({"logy": "yes"}, "expected one of 0, 1"),
        ({"band": "iqr"}, "expected one of std, minmax"),
        ({"color": "data"}, "expected one of run, task, arch"),
        ({"q": "x" * 101}, "too long"),
        ({"sweep": "s" * 101}, "too long"),
        ({"runs": ",".join(["zz"] * 50)}, "Ignored 45 more run references"),
    ],
)
def test_bad_compare_settings_are_ignored_with_a_message(params, message):
    view, messages = parse_compare(params)
    assert any(message in m for m in messages), messages
    assert view == CompareView()
    assert len(messages) <= 6


def test_search_text_is_kept_as_given():
    text = "<script>alert(1)</script> **bold** [x](javascript:1)"
    view, messages = parse_compare({"q": text})
    assert messages == [] and view.search == text and parse_compare(view.to_params())[0].search == text


def test_links_name_runs_by_the_shortest_unique_prefixes_and_resolve_them():
    names = unique_prefixes(*[["0123456789abcdef", "0123456789abcdee", "01239999aaaaaaaa", "ffff000000000000"]] * 2)
    assert names == {"0123456789abcdef": "0123456789abcdef", "0123456789abcdee": "0123456789abcdee",
                     "01239999aaaaaaaa": "01239", "ffff000000000000": "ffff"}
    assert sorted(resolve("0123", names)) == sorted(names)[:3] and resolve("01239", names) == ("01239999aaaaaaaa",)
    assert resolve("../x", names) == ()


def test_parsing_compare_links_never_raises():
    import random

    rng = random.Random(7)
    alphabet = "0123456789abcdef~:,.-_ %<>/\\\x00é\n" + "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(20))
    keys = ["runs", "mode", "metric", "x", "smoothing", "logy", "full", "groups", "band", "color", "ft", "fa", "fo",
            "fb", "fs", "q", "sweep", "other"]
    values = [None, [], [None], ["1", "0"], 1, 1.5, float("nan"), 10**300, b"abc", {"a": 1},
              "9" * 5000, "," * 200_000, ",".join(["0123456789abcdef~cnn~e:3"] * 5000)]
    for _ in range(300):
        params = {}
        for key in rng.sample(keys, rng.randrange(1, len(keys))):
            if rng.random() < 0.3:
                params[key] = rng.choice(values)
            else:
                params[key] = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        view, messages = parse_compare(params)
        assert isinstance(view, CompareView) and len(view.runs) <= MAX_RUNS
        assert all(isinstance(m, str) for m in messages)
        parse_inspect(params)
        view.to_params()  # whatever was read can be written again
    for odd in (None, [], "runs=abcd", 42):
        assert parse_compare(odd) == (CompareView(), [])
