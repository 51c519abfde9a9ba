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
from shutil import copyfile


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


def offer_executed_notebook(app, pagename, templatename, context, doctree) -> None:
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if doctree is None or not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    copyfile(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # Before the theme builds its header buttons (priority 501).
    app.connect("html-page-context", offer_executed_notebook, priority=400)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
