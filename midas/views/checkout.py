"""Customer checkout (no login): the booking behind a secret link."""

from __future__ import annotations

from flask import Blueprint, render_template

from midas.services import checkout

bp = Blueprint("checkout", __name__, url_prefix="/pay")


@bp.get("/<token>")
def show(token: str):
    view = checkout.for_token(token)
    return render_template("checkout/show.html", booking=view.booking, state=view.state)
