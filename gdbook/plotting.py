"""Plots several chapters share: contours of a 2-D function, descent paths on them, and
animations of those paths that play in a static web page (matplotlib's JS animation)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

Function2D = Callable[[np.ndarray, np.ndarray], np.ndarray]

_FONT_AWESOME_LINK = re.compile(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">\s*')


@dataclass
class Panel:
    """One axes of a path plot: a function of (x, y), its window and the paths drawn on it.

    ``paths`` maps a label to an array of shape (steps + 1, 2): the points visited.
    """

    f: Function2D
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    paths: Mapping[str, np.ndarray] = field(default_factory=dict)
    title: str = ""
    levels: int | Sequence[float] = 15
    log_levels: bool = False


def grid(f: Function2D, xlim, ylim, n: int = 201):
    """``X, Y, Z`` on an ``n`` x ``n`` grid; ``f`` must accept NumPy arrays."""
    x = np.linspace(*xlim, n)
    y = np.linspace(*ylim, n)
    X, Y = np.meshgrid(x, y)
    return X, Y, f(X, Y)


def contour(ax, panel: Panel, n: int = 201):
    """Draw the contour lines of ``panel.f`` over its window; returns the contour set."""
    X, Y, Z = grid(panel.f, panel.xlim, panel.ylim, n)
    levels = panel.levels
    if panel.log_levels and isinstance(levels, int):
        low = max(float(Z.min()), 1e-3 * float(Z.max()) + 1e-12)
        levels = np.geomspace(low, float(Z.max()), levels)
    cs = ax.contour(X, Y, Z, levels=levels, colors="0.6", linewidths=0.8)
    ax.set_xlim(*panel.xlim)
    ax.set_ylim(*panel.ylim)
    ax.set_aspect("equal")
    ax.grid(False)
    if panel.title:
        ax.set_title(panel.title)
    return cs


def _check_paths(paths: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    checked = {}
    for label, path in paths.items():
        array = np.asarray(path, dtype=float)
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(f"path {label!r} must have shape (steps, 2), got {array.shape}")
        checked[label] = array
    return checked


def plot_paths(panels: Sequence[Panel], *, figsize=None, marker_every: int = 1):
    """A static figure: one axes per panel, its contours and every path with start and end marked."""
    fig, axes = plt.subplots(1, len(panels), figsize=figsize or (4.2 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        contour(ax, panel)
        for label, path in _check_paths(panel.paths).items():
            (line,) = ax.plot(path[:, 0], path[:, 1], "-o", ms=2.5, markevery=marker_every, label=label)
            ax.plot(*path[0], "s", color=line.get_color(), ms=5)
        ax.plot([], [], "s", color="0.3", ms=5, label="start")
        ax.legend(loc="upper right", fontsize="small")
    return fig


def animate_paths(panels: Sequence[Panel], *, interval: int = 80, figsize=None, step_label: str = "step"):
    """Animate every path of every panel, one point per frame, and return the animation.

    Pass the result to :func:`to_html` to embed it in a page.
    """
    panels = list(panels)
    all_paths = [_check_paths(p.paths) for p in panels]
    frames = max(len(path) for paths in all_paths for path in paths.values())
    fig, axes = plt.subplots(1, len(panels), figsize=figsize or (4.2 * len(panels), 4.0), squeeze=False)
    artists = []
    texts = []
    for ax, panel, paths in zip(axes[0], panels, all_paths, strict=True):
        contour(ax, panel)
        # No tick labels: drawing them is most of the cost of every frame, and the static figures
        # carry the scales.
        ax.set_xticks([])
        ax.set_yticks([])
        for label, path in paths.items():
            (line,) = ax.plot([], [], "-", lw=1.5, label=label)
            (head,) = ax.plot([], [], "o", color=line.get_color(), ms=6)
            ax.plot(*path[0], "s", color=line.get_color(), ms=5)
            artists.append((line, head, path))
        ax.legend(loc="upper right", fontsize="small")
        texts.append(ax.text(0.02, 0.03, "", transform=ax.transAxes, fontsize="small"))

    def draw(frame: int):
        changed = []
        for line, head, path in artists:
            upto = min(frame, len(path) - 1)
            line.set_data(path[: upto + 1, 0], path[: upto + 1, 1])
            head.set_data([path[upto, 0]], [path[upto, 1]])
            changed += [line, head]
        for text in texts:
            text.set_text(f"{step_label} {frame}")
            changed.append(text)
        return changed

    # Lay the figure out once, then freeze it: re-running the layout engine for every frame
    # would double the time it takes to render the animation.
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
        fig.set_layout_engine("none")
    anim = animation.FuncAnimation(fig, draw, frames=frames, interval=interval, blit=True)
    return anim


def to_html(anim: animation.Animation, *, mode: str = "once", dpi: int = 80):
    """The animation as HTML with play controls (works on a static site); closes its figure.

    Every frame is embedded as a PNG, so ``dpi`` (lower than the static figures') keeps pages light.
    """
    from IPython.display import HTML

    with plt.rc_context({"savefig.dpi": dpi}):
        html = anim.to_jshtml(default_mode=mode)
    # matplotlib links Font Awesome 4 from a CDN for the buttons' icons; the book's theme already
    # ships Font Awesome (whose `fa fa-*` names still work), and a page should not call out for it.
    html = _FONT_AWESOME_LINK.sub("", html)
    plt.close(anim._fig)
    return HTML(html)
