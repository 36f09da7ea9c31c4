"""Operations probes for the platform: alive, and ready to serve."""

from __future__ import annotations

from flask import Blueprint, jsonify

from midas.extensions import csrf
from midas.services import health

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    report = health.readiness()
    return jsonify(report), 200 if report["ready"] else 503


csrf.exempt(bp)
