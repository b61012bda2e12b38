"""The login form for the single API token and for named operators (``OPERATORS``, shared/operators.py).

With no named operators the form asks for the token alone, as before. With
them it asks for a name and a password; a person who holds the token leaves
the name empty and pastes the token. Whoever signs in is in the session
(session.py), and every action of the console records them in the call's
history (shared/events.py).
"""

from __future__ import annotations

from .session import SessionSigner
from .templating import Markup, render

__all__ = ["login_form"]

NAME_FIELD = Markup(
    '<label for="name">Name <span class="muted">(empty: sign in with the API token)</span></label>\n'
    '<input id="name" name="name" autocomplete="username" autofocus maxlength="32">'
)


def login_form(signer: SessionSigner, next_path: str, message: Markup | str = "") -> Markup:
    named = bool(signer.operators)
    return render(
        "login",
        next=next_path,
        message=message,
        intro=(
            "Sign in with your operator name and password, or with this service's API token (CALLREEL_API_TOKEN)."
            if named
            else "Paste this service's API token (CALLREEL_API_TOKEN)."
        ),
        name_field=NAME_FIELD if named else "",
        secret_label="Password or API token" if named else "API token",
        focus=Markup("") if named else Markup(" autofocus"),
    )
