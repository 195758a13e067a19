"""The Train page's states: queue order, cancelled runs leaving "In progress", degenerate and
out-of-range configurations refused before launch, the data behind the recipe panel.

The live state is driven directly (queue without a worker, claim, record epochs, cancel), so
these tests train nothing and take seconds.
"""

from __future__ import annotations

from mnistlab.runs import worker as jobs
from tests.app.conftest import open_page
from tests.conftest import tiny_config


def errors(app):
    return [e.value for e in app.exception]


def texts(elements):
    """The elements' texts without the escaping of untrusted text (backslashes, zero-width spaces)."""
    return [e.value.replace("\\", "").replace("\u200b", "") for e in elements]


def configure(app, **numbers):
    """Pick a tiny mlp run on the page (fraction validation, a training-set limit)."""
    app.selectbox(key="train_arch").set_value("mlp")
    app.selectbox(key="train_validation").set_value("fraction")
    app.toggle(key="train_limit").set_value(True).run()
    for key, value in numbers.items():
        app.number_input(key=key).set_value(value)
    return app.run()


def test_queued_runs_are_listed_in_the_order_they_will_run(empty_store):
    configs = [tiny_config(epochs=e) for e in (3, 4, 5)]
    queued = jobs.enqueue(empty_store, configs)  # no worker: they stay queued
    app = open_page("pages/train.py")
    assert errors(app) == []
    assert "##### In progress (3)" in texts(app.markdown)
    cards = [m for m in texts(app.markdown) if m.startswith("**mlp")]
    assert [c.split("`")[1] for c in cards] == queued  # the live state's order: first queued first
    lines = [c for c in texts(app.caption) if c.startswith(":material/hourglass_empty: Queued, number")]
    assert [line.split("number ")[1].split(" ")[0] for line in lines] == ["1", "2", "3"]


def test_a_cancelled_run_leaves_in_progress_at_once_says_so_once_and_keeps_its_curves(empty_store):
    config = tiny_config(epochs=5)
    [run_id] = jobs.enqueue(empty_store, [config])
    live = empty_store.live
    attempt = live.claim("test-worker", None, run_id=run_id)
    history = [{"epoch": e, "loss": 2.0 / e, "accuracy": 0.2 * e, "val_loss": 2.1 / e, "val_accuracy": 0.19 * e,
                "seconds": 0.5} for e in (1, 2)]
    live.record_epoch(attempt.id, history)
    app = open_page("pages/train.py")
    assert "##### In progress (1)" in texts(app.markdown)
    assert app.get("plotly_chart") and app.button(key=f"cancel_{attempt.id}")

    app.button(key=f"cancel_{attempt.id}").click().run()  # what the worker does on the request:
    assert live.cancel_requested(attempt.id)
    live.finish(attempt.id, "cancelled", "cancelled after epoch 2")
    app.run()
    assert errors(app) == []
    assert not any(m.startswith("##### In progress") for m in texts(app.markdown))
    assert "##### Ended without a result" in texts(app.markdown)
    said = [w for w in texts(app.warning) if "Cancelled" in w]
    assert said == ["Cancelled after epoch 2 of 5."]  # once, with the epoch it stopped at
    assert len(app.get("plotly_chart")) == 1  # its partial curves stay
    app.button(key=f"dismiss_{attempt.id}").click().run()
    assert "##### Ended without a result" not in texts(app.markdown)


def test_a_training_set_smaller_than_one_batch_is_refused_before_launch(empty_store):
    app = configure(open_page("pages/train.py"), train_size=20, train_batch=64)
    assert errors(app) == []
    refused = [e for e in texts(app.error) if e.startswith("Cannot train this")]
    assert refused and "smaller than one batch (64)" in refused[0] and "at most 15" in refused[0]
    assert app.button(key="train_launch").disabled


def test_a_long_run_shows_an_estimate_before_launch(empty_store):
    app = open_page("pages/train.py")
    app.selectbox(key="train_arch").set_value("deep_cnn")
    app.number_input(key="train_epochs").set_value(1000).run()
    warnings = [w for w in texts(app.warning) if "would train for about" in w]
    assert warnings and "1000 epochs" in warnings[0]
    assert not app.button(key="train_launch").disabled  # a warning, not a refusal


def test_an_out_of_range_number_names_its_range_instead_of_jumping(empty_store):
    app = open_page("pages/train.py")
    app.number_input(key="train_epochs").set_value(5000).run()
    assert errors(app) == []
    assert app.number_input(key="train_epochs").value == 5000  # kept as typed, not clamped
    assert any("Epochs must be an integer from 1 to 1,000" in c for c in texts(app.caption))
    assert [b for b in app.button if b.key == "train_launch"] == []
    app.number_input(key="train_epochs").set_value(3).run()
    assert app.button(key="train_launch").label.startswith("Train cnn")


def test_the_recipe_panel_and_the_form_describe_this_machines_data(empty_store):
    app = open_page("pages/train.py")
    panel = " ".join(texts(app.caption) + texts(app.markdown))
    assert "4,000 training and 1,000 test images" in panel  # the shipped sample
    assert "hold-out 3,334 / 666" in panel and "50,000/10,000" not in panel
    assert any(c.startswith("Fits on 3,334 images, validates on 666") for c in texts(app.caption))


def page_default(**changes):
    """The configuration the page shows first: the Keras recipe's CNN (on the shipped sample here)."""
    from mnistlab import RunConfig

    return RunConfig(**{"task": "digits", "arch": "cnn", "epochs": 30, "batch_size": 32, "optimizer": "sgd",
                        "validation": "holdout", "data": "sample", **changes})


def progress_texts(app):
    return [p.proto.text for p in app.get("progress")]


def test_the_configuration_in_training_shows_its_progress_where_the_launch_button_was(empty_store):
    [run_id] = jobs.enqueue(empty_store, [page_default()])
    app = open_page("pages/train.py")
    assert errors(app) == []
    assert [b for b in app.button if b.key == "train_launch"] == []
    assert any(t.startswith(":material/hourglass_empty: Queued, number 1 in line") for t in progress_texts(app))

    attempt = empty_store.live.claim("test-worker", None, run_id=run_id)
    empty_store.live.record_epoch(attempt.id, [{"epoch": e, "loss": 1.0 / e, "accuracy": 0.5, "val_loss": 1.0 / e,
                                                "val_accuracy": 0.5, "seconds": 2.0} for e in (1, 2)])
    app.run()
    assert any(t.startswith("Epoch 2 of 30 · about 56s left") for t in progress_texts(app))

    empty_store.live.finish(attempt.id, "cancelled", "cancelled after epoch 2")
    app.run()  # it ended without a result: the launch button is back, and the card says what happened
    assert errors(app) == []
    assert app.button(key="train_launch").label.startswith("Train cnn")
    assert any("Cancelled after epoch 2 of 30" in w for w in texts(app.warning))


def test_a_stored_configuration_shows_its_headline_number_where_the_launch_button_was(empty_store):
    from tests.synthetic import write_runs

    write_runs(empty_store, [page_default()], data="sample")
    app = open_page("pages/train.py")
    assert errors(app) == []
    assert [b for b in app.button if b.key == "train_launch"] == []
    [note] = texts(app.success)
    assert note.startswith("Cached: this configuration is already in the store") and "Test accuracy **0." in note
    assert [m.label for m in app.metric] == ["Test accuracy", "Test loss", "Val accuracy", "Training time"]
    assert app.get("plotly_chart")


def test_the_architecture_summary_is_a_plain_table(empty_store):
    app = open_page("pages/train.py")
    table = next(m.value for m in app.markdown if m.value.startswith("| Layer | Output shape | Parameters |"))
    assert "| Dense 10 softmax \\(output\\) | 10 | 2,570 |" in table
    assert app.get("arrow_data_frame") == []  # no data grid: the page needs none of its browser code
