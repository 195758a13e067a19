import pytest

from mnistlab.runs.config import FIELDS, RunConfig
from mnistlab.views.share import (
    MAX_RUNS,
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
                    "validation": "v", "validation_size": "vs", "train_size": "n", "patience": "p", "seed": "s"}
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
                       mode="overlay", metric="loss", x="elapsed", smoothing=0.6)
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
    ({"runs": ",".join(f"{i:016x}" for i in range(200))}, f"only the first {MAX_RUNS}"),
    ({"runs": "0123456789abcdef~cnn~e:banana"}, "Ignored the configuration of run 0123456789abcdef"),
    ({"runs": "0123456789abcdef~cnn~data:/etc/passwd"}, "unknown configuration part"),
    ({"mode": "<script>"}, "expected one of side by side, overlay"),
    ({"smoothing": "1e9"}, "expected a number in [0, 0.95]"),
    ({"smoothing": ["0.1", "nan"]}, "expected a number"),
    ({"x": "x" * 5000}, "too long"),
]


@pytest.mark.parametrize("params, message", HOSTILE)
def test_hostile_compare_parameters_are_ignored_with_a_message(params, message):
    view, messages = parse_compare(params)
    assert any(message in m for m in messages), messages
    assert len(view.runs) <= MAX_RUNS
    assert all(len(ref.run_id) == 16 for ref in view.runs)


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
