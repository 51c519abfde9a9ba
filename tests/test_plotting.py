"""gdbook.plotting: contour panels, static path plots, and JS animations for a static page."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gdbook.plotting import Panel, animate_paths, plot_paths, to_html  # noqa: E402


def bowl(x, y):
    return x**2 + 4 * y**2


def _panel(**paths):
    return Panel(bowl, (-2, 2), (-2, 2), paths=paths, title="bowl")


def test_plot_paths_draws_every_path():
    path = np.array([[1.5, 1.0], [1.0, 0.5], [0.5, 0.1]])
    fig = plot_paths([_panel(gd=path), _panel(other=path[::-1])])
    axes = fig.axes
    assert len(axes) == 2
    labels = [text.get_text() for text in axes[0].get_legend().get_texts()]
    assert labels == ["gd", "start"]
    matplotlib.pyplot.close(fig)


def test_animation_has_one_frame_per_point_of_the_longest_path():
    anim = animate_paths([_panel(a=np.zeros((5, 2)), b=np.ones((9, 2)))], interval=10)
    html = to_html(anim).data
    assert "<script" in html and "anim" in html.lower()
    assert html.count("frames[8]") == 1 and "frames[9]" not in html
    assert "<link" not in html and "http" not in html  # nothing fetched from elsewhere


def test_paths_must_be_points():
    with pytest.raises(ValueError, match="shape"):
        plot_paths([_panel(bad=np.zeros((4, 3)))])
