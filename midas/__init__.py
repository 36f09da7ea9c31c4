"""Midas: the back office of a luxury rental house."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from midas.config import ROOT, Config


def create_app(config: Config | None = None) -> Flask:
    """Build the application; nothing connects to a database or Redis until first use."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    config = config or Config()
    app.config.from_mapping(config.as_dict())
    register_proxy(app)
    register_extensions(app)
    register_blueprints(app)
    register_request_hooks(app)
    register_errors(app)
    register_cli(app)
    register_jinja(app)
    return app


def register_proxy(app: Flask) -> None:
    # Heroku's router is exactly one hop: trusting more would let a client forge its IP.
    hops = app.config["PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_port=hops)


def register_extensions(app: Flask) -> None:
    from midas import models  # noqa: F401  (the mappers must exist before first query)
    from midas.extensions import csrf, db, htmx, limiter, login_manager, migrate
    from midas.services.auth import load_user

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), compare_type=True, render_as_batch=True)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)
    from midas.database import register_engine_events

    register_engine_events(app)


def register_blueprints(app: Flask) -> None:
    from midas.views import STAFF_BLUEPRINTS, auth, checkout, checkout_paypal, client_errors, feeds, ops
    from midas.webhooks import paypal as paypal_webhooks
    from midas.webhooks import stripe as stripe_webhooks

    app.register_blueprint(auth.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(checkout.bp)
    app.register_blueprint(client_errors.bp)
    app.register_blueprint(checkout_paypal.bp)
    app.register_blueprint(paypal_webhooks.bp)
    app.register_blueprint(stripe_webhooks.bp)
    app.register_blueprint(feeds.bp)
    for blueprint in STAFF_BLUEPRINTS:
        app.register_blueprint(blueprint)


def register_request_hooks(app: Flask) -> None:
    from midas import observability

    observability.init_app(app)


def register_errors(app: Flask) -> None:
    from midas import sentry
    from midas.services import error_capture
    from midas.views import error_pages

    error_pages.init_app(app)
    sentry.init_app(app)  # only when SENTRY_DSN is set
    error_capture.init_app(app)


def register_cli(app: Flask) -> None:
    from midas import cli

    cli.init_app(app)


def register_jinja(app: Flask) -> None:
    from midas import formatting

    formatting.init_app(app)
