"""Ceiling 1: a bare Flask "hello world", served by the same gunicorn settings as Midas."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, world!"
