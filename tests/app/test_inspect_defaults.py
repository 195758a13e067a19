from tests.app.conftest import open_page


def _rank(runs):
    return sorted(runs, key=lambda r: (r.metrics["val_accuracy"], r.metrics["test_accuracy"]), reverse=True)


def test_inspect_opens_on_the_best_run_against_the_second_best_of_its_task(filled_store):
    store, _ = filled_store
    ranked = _rank(store.list_runs().runs)
    best = ranked[0]
    same_task = [r for r in ranked[1:] if r.config.task == best.config.task]
    app = open_page("pages/inspect.py")
    assert not app.exception
    assert app.selectbox(key="inspect_run").value == best.run_id
    assert app.selectbox(key="inspect_second").value == (same_task[0].run_id if same_task else "")
    app.selectbox(key="inspect_run").set_value(_rank([r for r in ranked if r.config.task == "digits"])[0].run_id)
    app.run()
    digits = _rank([r for r in ranked if r.config.task == "digits"])
    assert app.selectbox(key="inspect_second").value in ("", digits[1].run_id)
