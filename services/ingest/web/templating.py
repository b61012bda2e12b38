"""A tiny HTML renderer on ``string.Template``: every value escaped unless it is already HTML.

The operator page needs a handful of templates, not a template language, so
there is no engine to depend on: a template is a file under ``templates/``
with ``$name`` placeholders, and each value is HTML-escaped on the way in.
Only :class:`Markup` (HTML this code built from escaped parts) goes in as is.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable
from importlib import resources
from string import Template
from typing import Any

__all__ = ["Markup", "escape", "render", "join"]


class Markup(str):
    """A string that is HTML already; :func:`escape` leaves it alone."""

    __slots__ = ()

    def __add__(self, other: str) -> str:
        # HTML plus HTML is HTML; HTML plus anything else is a plain string (escaped wherever it goes).
        joined = str.__add__(self, other)
        return Markup(joined) if isinstance(other, Markup) else joined


def escape(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Any], separator: str = "\n") -> Markup:
    """Concatenate fragments, escaping any that are not Markup."""
    return Markup(separator.join(escape(part) for part in parts))


@functools.cache
def _template(name: str) -> Template:
    text = resources.files(__package__).joinpath("templates", f"{name}.html").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **values: Any) -> Markup:
    """Fill ``templates/{name}.html``; a placeholder without a value is a bug, so it raises KeyError."""
    return Markup(_template(name).substitute({key: escape(value) for key, value in values.items()}))
