"""A small Sphinx extension the book's build loads (``_config.yml``: ``sphinx.extra_extensions``).

It offers each executed page as a notebook. The theme's download menu has an ".ipynb" entry only
for pages written as ``.ipynb``; this book's pages are MyST Markdown, executed by myst-nb into
``_build/jupyter_execute/<page>.ipynb``. That executed notebook (with its outputs) is copied next to
the page's source in the site (``_sources/<page>.ipynb``) and named in the page context, so the menu
offers it next to the ``.md``.

It also removes duplicate ``<script>`` entries from every page. sphinx-thebe (which Jupyter Book 1.x
always loads) can register its inline configuration script twice, and the second copy
re-declares a ``const``: the browser then logs "Identifier 'THEBE_JS_URL' has already been
declared" on every page. Identical scripts are never useful twice, so the first copy is kept.
"""

from __future__ import annotations

from pathlib import Path


def _script_key(script) -> tuple:
    # An inline script has no file: Sphinx records that as None or as "", depending on who added it.
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def executed_notebook(app, pagename: str):
    """The page's notebook with the outputs of its last execution, or None if it has none.

    For a page whose code has not changed, myst-nb takes the outputs from its execution cache, but
    writes ``jupyter_execute/<page>.ipynb`` from the notebook *before* the merge: after a prose-only
    edit that file has no outputs (myst-nb 1.x, ``sphinx_.py``). So the cache is asked first, as
    myst-nb itself does; pages executed on every build (not cached) have a complete file.
    """
    import jupytext
    import nbformat
    from jupyter_cache import get_cache

    build = Path(app.outdir).parent
    source = Path(app.srcdir) / f"{pagename}.md"
    cache = Path(app.env.mystnb_config.execution_cache_path or build / ".jupyter_cache")
    if source.is_file() and cache.is_dir():
        try:
            _, merged = get_cache(cache).merge_match_into_notebook(jupytext.read(source))
            return merged
        except KeyError:  # not cached: executed on every build, or not a notebook
            pass
    executed = build / "jupyter_execute" / f"{pagename}.ipynb"
    return nbformat.read(executed, as_version=4) if executed.is_file() else None


def offer_executed_notebook(app, pagename, templatename, context, doctree) -> None:
    import nbformat

    if doctree is None:
        return
    notebook = executed_notebook(app, pagename)
    if notebook is None:
        return
    build = Path(app.outdir).parent
    # Repair myst-nb's copy too (tests/test_prose_numbers.py reads it), then offer the notebook.
    for target in (
        build / "jupyter_execute" / f"{pagename}.ipynb",
        Path(app.outdir) / "_sources" / f"{pagename}.ipynb",
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # Before the theme builds its header buttons (priority 501).
    app.connect("html-page-context", offer_executed_notebook, priority=400)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
