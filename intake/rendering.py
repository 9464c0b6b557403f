"""The console's templates (intake/templates/, package data) and its one stylesheet, whose hash
the operator listener's content security policy allows (`intake.signin`)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from intake.console import when

STYLE = files("intake").joinpath("templates/console.css").read_text()


def _clock(value: Any) -> str:
    moment = when(value)
    return f"{moment:%H:%M:%S}" if moment else str(value or "")


def _stamp(value: Any) -> str:
    moment = when(value)
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def _minute(value: Any) -> str:
    moment = when(value)
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


TEMPLATES = Environment(loader=PackageLoader("intake", "templates"), autoescape=select_autoescape(["html"]))
TEMPLATES.filters.update(
    clock=_clock, stamp=_stamp, minute=_minute, urlencode_all=lambda value: quote(str(value), safe="")
)


def fragment(template: str, **context: Any) -> Markup:
    """A part of a page (escaped by the template), to place in another."""
    return Markup(TEMPLATES.get_template(template).render(**context))  # noqa: S704 - autoescaped template
