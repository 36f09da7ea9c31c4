"""Flask-WTF forms: field names follow the model columns (the public contract)."""
