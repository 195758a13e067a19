"""A fresh visit draws only what is in view: the charts a browser without a GPU draws slowly
(parallel coordinates, which are WebGL; Inspect's calibration; grids of small heatmaps) are
built when asked for, or drawn as pictures."""

from __future__ import annotations

import numpy as np

from mnistlab.views import charts
from tests.app.conftest import open_page
from tests.app.test_compare_scale import captions, errors, store_with
from tests.synthetic import synthetic_configs


def chart_ids(app) -> list[str]:
    return [c.proto.id for c in app.get("plotly_chart")]


def test_parallel_coordinates_are_built_only_once_their_expander_is_opened(tmp_path, monkeypatch):
    store_with(tmp_path, monkeypatch, synthetic_configs(8))
    app = open_page("pages/compare.py")
    assert errors(app) == []
    assert "What varies across the shown runs" in [h.value for h in app.subheader]
    assert any(e.label.startswith("Parallel coordinates") for e in app.expander)
    assert not any(i.endswith("compare_parallel") for i in chart_ids(app))
    app.session_state["compare_parallel_open"] = True
    app.run()
    assert errors(app) == []
    parallel = [c for c in app.get("plotly_chart") if c.proto.id.endswith("compare_parallel")]
    assert len(parallel) == 1 and '"parcoords"' in parallel[0].proto.spec
    assert "drag along an axis to filter" in captions(app)


def test_inspect_builds_its_calibration_only_once_opened(filled_store):
    app = open_page("pages/inspect.py")
    assert errors(app) == []
    assert any(i.endswith("inspect_matrix") for i in chart_ids(app))
    assert not any(i.endswith(("inspect_reliability", "inspect_confidence", "inspect_epoch_curves"))
                   for i in chart_ids(app))
    app.session_state["inspect_calibration_open"] = True
    app.session_state["inspect_epochs_open"] = True
    app.run()
    assert errors(app) == []
    ids = chart_ids(app)
    for key in ("inspect_reliability", "inspect_confidence", "inspect_epoch_curves"):
        assert any(i.endswith(key) for i in ids), key
    assert "Expected calibration error" in captions(app)


def test_data_and_filters_draw_their_grids_as_pictures(filled_store):
    data = open_page("pages/data.py")
    assert errors(data) == []
    (grid,) = data.get("image")
    assert len(grid.proto.imgs) == 25 and all(i.url.startswith("data:image/png;base64,") for i in grid.proto.imgs)
    assert not any(i.endswith("data_grid") for i in chart_ids(data))
    filters = open_page("pages/filters.py")
    assert errors(filters) == []
    assert [len(i.proto.imgs) for i in filters.get("image")] == [32, 32]  # the learned kernels, their maps
    assert sum(i.endswith(("filters_input", "filters_kernel", "filters_output")) for i in chart_ids(filters)) == 3
    assert any("fixed scale from" in c.value for c in filters.caption)  # the output's colour scale is stated


def test_image_pixels_colours_as_the_heatmaps_do_and_stays_sharp():
    digit = np.array([[0, 255], [128, 0]], dtype=np.uint8)
    pixels = charts.image_pixels(digit, zoom=3)  # gray_r: 0 white, the most black
    assert pixels.shape == (6, 6, 3) and pixels.dtype == np.uint8
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[0, 3].tolist() == [0, 0, 0]
    assert (pixels[:3, :3] == 255).all()  # each value a 3 x 3 block: no blur
    kernel = np.array([[-2.0, 0.0, 1.0]])
    rdbu = charts.image_pixels(kernel, "RdBu", symmetric=True)
    red, white, blue = (tuple(int(c) for c in p) for p in rdbu[0])
    assert red[0] > red[2] and blue[2] > blue[0]  # negative red, positive blue, as the heatmaps
    assert min(white) > 230  # zero is (nearly) white: the scale is centred on it
    assert charts.image_pixels(np.zeros((2, 2))).tolist() == np.full((2, 2, 3), 255).tolist()  # flat: no NaN
    assert charts.picture_url(digit, zoom=2).startswith("data:image/png;base64,")
