"""Page-or-fragment rendering: HTMX asks for one named block, a browser for the whole page."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from jinja2_fragments.flask import render_block


def render(template: str, block: str | None = None, **context: Any) -> str:
    """Render `block` alone for an HTMX request (not a boosted navigation), else the full page."""
    if block and request.htmx and not request.htmx.boosted:
        return render_block(template, block, **context)
    return render_template(template, **context)
