"""Forms for bulk inventory work: the CSV upload and the bulk price / status change."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired, FileSize
from wtforms import HiddenField, IntegerField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from midas.services.inventory import ItemFilters
from midas.services.inventory_bulk import MAX_BYTES, BulkChange, new_token


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[
        FileRequired("Choose a CSV file to import."),
        FileAllowed(["csv"], "Upload a .csv file (in a spreadsheet: Save as → CSV UTF-8)."),
        FileSize(MAX_BYTES, message="The file is larger than 2 MB: split it into smaller files."),
    ])
    token = HiddenField(default=new_token, validators=[DataRequired(), Length(max=64)])


class BulkForm(FlaskForm):
    """What to change, and the list filters that choose which items (all matching items, not one page)."""

    action = StringField("Change", validators=[AnyOf(["price", "status"], "Choose the daily rate or the status.")])
    percent = StringField("Percentage", validators=[Length(max=16)])
    status = StringField("New status", validators=[Length(max=16)])
    q = StringField(validators=[Length(max=160)])
    category = StringField(validators=[Length(max=16)])
    location = IntegerField(validators=[Optional()])
    status_filter = StringField(validators=[Length(max=16)])
    token = HiddenField(validators=[Length(max=64)])
    expected = IntegerField(validators=[Optional()])
    confirm = HiddenField()

    @property
    def confirmed(self) -> bool:
        return self.confirm.data == "yes"

    def filters(self) -> ItemFilters:
        return ItemFilters(q=self.q.data or "", category=self.category.data or "", location_id=self.location.data,
                           status=self.status_filter.data or "")

    def change(self) -> BulkChange:
        return BulkChange(self.action.data or "", self.percent.data or "", self.status.data or "")
