"""Operator commands: `flask --app wsgi users create …`, `flask --app wsgi seed --demo`."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from midas.services import DomainError, auth

users = AppGroup("users", help="Manage staff accounts.")


@users.command("create")
@click.argument("email")
@click.option("--name", required=True, help="Full name shown to colleagues.")
@click.option("--role", type=click.Choice(["concierge", "admin", "owner"]), default="concierge", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def create_user(email: str, name: str, role: str, password_stdin: bool) -> None:
    """Create a staff account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = auth.create_staff(None, email, name, role, password)
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {user.role} {user.email}.")


@click.command("seed")
@click.option("--demo", is_flag=True, required=True, help="Load the demo business (safe to run twice).")
def seed(demo: bool) -> None:
    """Load demo data: locations, fleet, customers, bookings, payments and more."""
    from midas.services import demo as demo_data

    counts = demo_data.seed_demo()
    if counts:
        click.echo("Demo business created: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    else:
        click.echo("Demo business already present; nothing changed.")
    for email, role in demo_data.DEMO_LOGINS:
        click.echo(f"  {role:<10} {email}  password: {demo_data.DEMO_PASSWORD}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker with the scheduler on the high, default and low queues (needs REDIS_URL)."""
    from flask import current_app

    from midas.tasks.worker import run_worker

    if not current_app.config["REDIS_URL"]:
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs already run inside the web process.")
    run_worker(burst=burst)


outbox = AppGroup("outbox", help="The notification outbox.")


@outbox.command("sweep")
def outbox_sweep() -> None:
    """Re-dispatch messages left pending (Redis was down, a job was lost) or stuck sending (a killed worker)."""
    from midas.services import outbox as outbox_service

    result = outbox_service.sweep()
    click.echo(f"Re-dispatched {len(result.requeued)} pending and {len(result.unstuck)} stuck message(s); "
               f"{len(result.failed)} gave up.")


schedule = AppGroup("schedule", help="Periodic jobs: hold expiry, reminders, the outbox sweep.")


@schedule.command("list")
def schedule_list() -> None:
    """Each periodic job, its interval and queue, and (with Redis) its next run."""
    from flask import current_app

    from midas.tasks import schedule as periodic

    runs = periodic.next_runs() if current_app.config["REDIS_URL"] else {}
    for job in periodic.PERIODIC:
        when = runs.get(job.name)
        next_run = f"next {when:%Y-%m-%d %H:%M:%S} UTC" if when else "in-process" if not runs else "not scheduled"
        click.echo(f"{job.name:<24} every {job.every:>4} s  queue {job.queue:<8} {next_run}")


@schedule.command("run")
@click.argument("name")
def schedule_run(name: str) -> None:
    """Run one periodic job now, in this process."""
    from flask import current_app

    from midas.tasks import schedule as periodic

    if name not in periodic.BY_NAME:
        raise click.ClickException(f"Unknown job {name!r}; choose from {', '.join(periodic.BY_NAME)}.")
    click.echo(f"{name}: {periodic.run_in_process(current_app._get_current_object(), name)!r}")


@click.command("reconcile")
@click.option("--since", "since", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC).")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), help="Last day (UTC), inclusive.")
def reconcile(since, until) -> None:
    """Compare Stripe's PaymentIntents and Refunds of the period with ours and print the differences."""
    from midas.services import reconciliation

    try:
        report = reconciliation.run_and_save(since.date(), until.date() if until else None)
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Checked {report.intents_checked} payment intent(s) and {report.refunds_checked} refund(s).")
    for diff in report.differences:
        click.echo(f"{diff.label:<18} {diff.kind:<15} {diff.provider_id:<32} ours: {diff.ours or '-'}"
                   f"  Stripe: {diff.theirs or '-'}")
    click.echo("No differences." if report.clean else f"{len(report.differences)} difference(s).")


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(seed)
    app.cli.add_command(worker)
    app.cli.add_command(outbox)
    app.cli.add_command(schedule)
    app.cli.add_command(reconcile)
    _start_embedded_ticker(app)


def _start_embedded_ticker(app: Flask) -> None:
    """`flask run` without Redis has no worker: it runs the periodic jobs itself (never in tests)."""
    from flask.helpers import get_debug_flag

    from midas.tasks import schedule as periodic

    context = click.get_current_context(silent=True)
    if app.testing or app.config["REDIS_URL"] or context is None:
        return
    if periodic.serving_with_flask_run(context.info_name, context.params.get("reload"), get_debug_flag()):
        periodic.start_embedded_ticker(app)
