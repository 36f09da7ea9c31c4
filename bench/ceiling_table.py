"""Ceiling 2: a bare Flask page rendering a 50-row Jinja table, no database, same gunicorn settings."""

from flask import Flask, render_template
from jinja2 import DictLoader

app = Flask(__name__)

ROWS = [{"reference": f"MID-{n:08X}", "customer": f"Customer {n}", "item": f"Ferrari SF90 #{n}",
         "status": ("confirmed", "pending_payment", "completed")[n % 3], "starts": f"2026-12-{n % 28 + 1:02d} 10:00",
         "total": f"£{1000 + n * 37:,}.00"} for n in range(50)]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bookings</title></head>
<body><main><h1>Bookings</h1>
<table>
  <thead><tr><th>Reference</th><th>Customer</th><th>Item</th><th>Status</th><th>Starts</th><th>Total</th></tr></thead>
  <tbody>
  {% for row in rows %}
    <tr><td><a href="/bookings/{{ row.reference }}">{{ row.reference }}</a></td><td>{{ row.customer }}</td>
        <td>{{ row.item }}</td><td><span data-status="{{ row.status }}">{{ row.status }}</span></td>
        <td>{{ row.starts }}</td><td>{{ row.total }}</td></tr>
  {% endfor %}
  </tbody>
</table></main></body></html>"""


# A loaded template, compiled once and cached as Midas's own are (render_template_string would
# compile the source on every request and make the ceiling needlessly low).
app.jinja_loader = DictLoader({"table.html": PAGE})


@app.get("/")
def table():
    return render_template("table.html", rows=ROWS)
