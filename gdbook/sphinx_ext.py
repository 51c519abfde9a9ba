"""A small Sphinx extension the book's build loads (``_config.yml``: ``sphinx.extra_extensions``).

It removes duplicate ``<script>`` entries from every page. sphinx-thebe (which Jupyter Book 1.x
always loads) can register its inline configuration script twice, and the second copy
re-declares a ``const``: the browser then logs "Identifier 'THEBE_JS_URL' has already been
declared" on every page. Identical scripts are never useful twice, so the first copy is kept.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
