"""Reports area: an index, one page per report (filters, charts, tables) and each table as a streamed CSV."""

from __future__ import annotations

from datetime import date

from flask import Response, abort, request, stream_with_context, url_for
from werkzeug.datastructures import MultiDict

from midas.htmx import render
from midas.models import Category, Role, utcnow
from midas.services import reports
from midas.services.keyset import MAX_ID
from midas.views.guards import staff_blueprint

bp = staff_blueprint("reports", __name__, minimum=Role.ADMIN, url_prefix="/reports")
FILTER_ARGS = ("from", "to", "location", "category")
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)  # keeps odd dates (year 1, year 9999) computable


@bp.get("")
def index():
    return render("reports/index.html", reports=reports.REPORTS)


@bp.get("/<name>")
def show(name: str):
    if name not in reports.REPORTS:
        abort(404)
    filters = report_filters(request.args)
    title, description, _ = reports.REPORTS[name]
    tables = [(table, table.page_rows()) for table in reports.report_tables(name, filters)]
    return render("reports/show.html", "report", name=name, title=title, description=description,
                  filters=filters, tables=tables, choices=reports.filter_choices())


@bp.get("/<name>.csv")
def export(name: str):
    """?table=<slug> picks the table (the report's first when absent); an unknown report or table is a 404."""
    try:
        slug, rows = reports.export_csv(name, request.args.get("table", ""), report_filters(request.args))
    except KeyError:
        abort(404)
    response = Response(stream_with_context(rows), mimetype="text/csv")
    filename = f"midas-{name}-{slug}-{utcnow():%Y-%m-%d}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def report_filters(args: MultiDict) -> reports.ReportFilters:
    """Filters from query arguments; a missing or malformed date falls back to the last twelve months."""
    default_from, default_to = reports.default_period()
    period_from, period_to = _date_arg(args, "from") or default_from, _date_arg(args, "to") or default_to
    if period_to < period_from:
        period_from, period_to = period_to, period_from
    category, location_id = args.get("category", ""), args.get("location", type=int)
    return reports.ReportFilters(period_from, period_to,
                                 location_id=location_id if location_id and 0 < location_id <= MAX_ID else None,
                                 category=category if category in Category.values() else None)


def _date_arg(args: MultiDict, name: str) -> date | None:
    try:
        value = date.fromisoformat(args.get(name, ""))
    except ValueError:
        return None
    return min(max(value, EARLIEST), LATEST)


def _filter_args(args: MultiDict) -> dict[str, str]:
    return {name: args[name] for name in FILTER_ARGS if args.get(name)}


bp.add_app_template_global(reports.display_cell, "report_cell")


@bp.app_template_global()
def report_csv_url(name: str, table: str) -> str:
    """The CSV of one table under the page's current filters."""
    return url_for("reports.export", name=name, table=table, **_filter_args(request.args))
