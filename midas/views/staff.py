"""Staff accounts (owner only): list, create, deactivate, reset passwords."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from midas.forms.auth import PasswordResetForm, StaffForm
from midas.models import Role, utcnow
from midas.services import DomainError, auth
from midas.views.guards import staff_blueprint

bp = staff_blueprint("staff", __name__, minimum=Role.OWNER, url_prefix="/staff")


@bp.get("")
def index():
    return render_template("staff/index.html", staff=auth.list_staff(), now=utcnow())


@bp.route("/new", methods=["GET", "POST"])
def create():
    form = StaffForm()
    if form.validate_on_submit():
        try:
            user = auth.create_staff(current_user, form.email.data, form.name.data, form.role.data,
                                     form.password.data)
        except DomainError as exc:
            form.email.errors.append(str(exc))
        else:
            flash(f"{user.name} can now sign in as {user.role}.", "success")
            return redirect(url_for("staff.index"))
    return render_template("staff/new.html", form=form), 422 if form.errors else 200


@bp.post("/<int:user_id>/deactivate")
def deactivate(user_id: int):
    user = auth.set_active(current_user, user_id, active=False)
    flash(f"{user.name} is deactivated and signed out everywhere.", "success")
    return redirect(url_for("staff.index"))


@bp.post("/<int:user_id>/activate")
def activate(user_id: int):
    user = auth.set_active(current_user, user_id, active=True)
    flash(f"{user.name} can sign in again.", "success")
    return redirect(url_for("staff.index"))


@bp.post("/<int:user_id>/password")
def reset_password(user_id: int):
    form = PasswordResetForm()
    if not form.validate_on_submit():
        flash(" ".join(form.password.errors) or "Enter a new password.", "error")
        return redirect(url_for("staff.index"))
    user = auth.reset_password(current_user, user_id, form.password.data)
    flash(f"Password for {user.name} was reset; their sessions have ended.", "success")
    return redirect(url_for("staff.index"))
