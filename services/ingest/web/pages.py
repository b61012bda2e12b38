"""The operator page: server-rendered HTML over the same views as the status API.

Routes (all under ``/ops``; ``/`` redirects to the overview; every page shows banners.py's banners):

- ``GET|POST /ops/login``, ``POST /ops/logout`` — the API token for a session cookie (session.py)
- ``GET /ops/overview`` — the landing page: throughput, latency, spend, failures (overview.py)
- ``GET /ops/calls`` — calls newest first, filtered by status/stage, searched by id prefix, with the backlog
- ``GET /ops/calls/{callId}`` — one call: videos, its transcript (each line seeks the video), stage timeline, error, segments
- ``POST /ops/calls/{callId}/retry`` — ``shared.retry.retry_call``, for failed and partial calls (CSRF token)
- ``GET /ops/static/{name}`` — the stylesheet and script

Every page is sent with a strict Content-Security-Policy (scripts and styles
from this app only, media from this app and the store's presigned origin),
``no-store`` caching and no Referer, since pages carry presigned URLs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib import resources
from urllib.parse import parse_qsl, urlencode, urlsplit

import falcon
from falcon.app_helpers import default_serialize_error

from shared.callview import call_view
from shared.events import history
from shared.models import STAGES, Call, TranscriptStatus, VideoStatus, utcnow
from shared.operators import TOKEN_OPERATOR
from shared.settings import Settings
from shared.storage import Storage
from shared.transcript import DEFAULT_NAMES, SPEAKERS, Transcript

from ..body import read_capped
from . import fragments as f
from .api import find_call, retry
from .auth import PUBLIC, SESSION
from .backlog import BacklogReader
from .banners import current_banners
from .bulk import add_bulk_routes, bulk_form
from .deadletters import add_dead_letter_routes
from .events import events_table
from .listing import STAGE_FILTERS, InvalidQuery, ListQuery, parse_list_query, read_page
from .live import CallLive, ListLive, facts, in_flight, live_marker
from .media import video_link
from .operators import login_form
from .session import LOGIN_PATH, Session, SessionSigner, safe_next
from .templating import Markup, escape, join, render
from .throttle import Throttle
from .transcripts import read_stored_transcript

__all__ = ["add_operator_routes", "serialize_error", "send_page"]

NO_SPEECH = (
    '<p class="notice" id="no-speech">No one speaks in this recording: neither side has speech,'
    " so the video shows the two still images and no word.</p>"
)

log = logging.getLogger("callreel.ingest.pages")

FORM_MAX_BYTES = 4096
REFRESH_SECONDS = 10
STATIC = {
    "operator.css": "text/css; charset=utf-8",
    "operator.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    "share.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
}
RETRYABLE = (VideoStatus.FAILED, VideoStatus.PARTIAL)


def _origins(urls: Iterable[str | None]) -> list[str]:
    found = []
    for url in urls:
        parts = urlsplit(url or "")
        if parts.scheme in ("http", "https") and parts.netloc:
            found.append(f"{parts.scheme}://{parts.netloc}")
    return sorted(set(found))


def send_page(
    resp: falcon.Response,
    *,
    title: str,
    content: Markup,
    csrf: str | None = None,
    status: str | int = falcon.HTTP_200,
    refresh: int | None = None,
    media: Iterable[str | None] = (),
    images: Iterable[str | None] = (),
) -> None:
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.text = render(
        "base", title=title, content=content, nav=render("nav", csrf=csrf) if csrf else "", refresh=refresh or "",
        banners=current_banners() if csrf else "",  # what needs a person, for a signed-in operator (banners.py)
    )
    media_src = " ".join(["'self'", *_origins(media)])
    img_src = " ".join(["'self'", *_origins(images)])
    resp.set_header(
        "Content-Security-Policy",
        f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src {img_src}; "
        f"media-src {media_src}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("X-Frame-Options", "DENY")


def read_small_form(req: falcon.Request) -> dict[str, str]:
    """A urlencoded form of a few fields (the first value of each), capped in size."""
    if (req.content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise falcon.HTTPUnsupportedMediaType(description="Send the form as application/x-www-form-urlencoded.")
    raw = read_capped(req, FORM_MAX_BYTES, what="The form")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise falcon.HTTPBadRequest(title="Unreadable form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def serialize_error(req: falcon.Request, resp: falcon.Response, exception: falcon.HTTPError) -> None:
    """Errors of the operator page as a page (a person is reading); the API's stay JSON."""
    if not req.path.startswith("/ops/"):
        return default_serialize_error(req, resp, exception)
    content = Markup(
        f'<section class="card"><h1>{escape(exception.title)}</h1><p>{escape(exception.description or "")}</p>'
        '<p><a href="/ops/calls">All calls</a></p></section>'
    )
    send_page(resp, title=exception.title or "Error", content=content, status=exception.status)


class _Page:
    access = SESSION  # auth.Authentication puts the session in req.context, or redirects to the login form

    def __init__(self, signer: SessionSigner) -> None:
        self.signer = signer

    def checked_post(self, req: falcon.Request) -> tuple[Session, dict[str, str]]:
        """The session of a POST whose form carries this session's CSRF token; 403 otherwise."""
        session: Session = req.context.session
        form = read_small_form(req)
        if not self.signer.csrf_ok(session, form.get("csrf")):
            log.warning("operator POST refused: bad CSRF token", extra={"path": req.path})
            raise falcon.HTTPForbidden(
                title="Invalid form", description="The form expired or came from elsewhere: reload the page and try again."
            )
        return session, form


class LoginPage(_Page):
    access = PUBLIC
    uses_database = False

    def __init__(self, signer: SessionSigner, throttle: Throttle, client: Callable[[falcon.Request], str]) -> None:
        super().__init__(signer)
        self.throttle = throttle
        self.client = client

    def _form(self, resp: falcon.Response, next_path: str, message: Markup | str = "", status: str = falcon.HTTP_200) -> None:
        send_page(resp, title="Sign in", content=login_form(self.signer, next_path, message), status=status)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        next_path = safe_next(req.get_param("next"))
        if self.signer.session_of(req):
            raise falcon.HTTPSeeOther(next_path)
        if not self.signer.enabled:
            message = f.message_box("The operator page is off: set CALLREEL_API_TOKEN to use it.", bad=True)
            return self._form(resp, next_path, message, falcon.HTTP_403)
        self._form(resp, next_path)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_small_form(req)
        next_path = safe_next(form.get("next"))
        client = self.client(req)
        name = form.get("name", "").strip()
        operator = self.signer.operator_matches(name, form.get("token", "")) if name else None
        if operator is None and (name or not self.signer.token_matches(form.get("token", ""))):
            # The right token is never throttled: an operator behind the same proxy as a guesser still gets in.
            wait = self.throttle.count_failure(client) if self.signer.enabled else None
            if wait is not None:
                log.warning("operator login from %s refused: too many wrong tokens", client)
                resp.retry_after = wait
                message = f.message_box(f"Too many wrong tokens from this address: try again in {wait} s.", bad=True)
                return self._form(resp, next_path, message, falcon.HTTP_429)
            log.warning("operator login refused from %s", client)
            wrong = "That name and password do not match." if name else "That is not this service's API token."
            message = f.message_box(wrong, bad=True)
            return self._form(resp, next_path, message, falcon.HTTP_401 if self.signer.enabled else falcon.HTTP_403)
        cookie, session = self.signer.issue(operator or TOKEN_OPERATOR)
        self.signer.set_cookie(resp, cookie)
        log.info("operator %s signed in from %s", session.operator, client)
        raise falcon.HTTPSeeOther(next_path)


class LogoutAction(_Page):
    uses_database = False

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.checked_post(req)
        self.signer.clear_cookie(resp)
        resp.status = falcon.HTTP_303
        resp.location = LOGIN_PATH


class CallListPage(_Page):
    def __init__(self, signer: SessionSigner, backlog: BacklogReader) -> None:
        super().__init__(signer)
        self.backlog = backlog

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session: Session = req.context.session
        status, message = falcon.HTTP_200, Markup("")
        try:
            query = parse_list_query(req.params)
        except InvalidQuery as exc:
            query, status, message = ListQuery(), falcon.HTTP_400, f.message_box(exc.description, bad=True)
        page = read_page(query)
        now = utcnow()
        rows = join(f.call_row(call, now) for call in page.calls) or Markup('<tr><td colspan="8" class="muted">No calls match.</td></tr>')
        pager = [Markup(f'<a href="/ops/calls?{escape(urlencode(query.params()))}">Newest</a>')] if query.after else []
        if page.next_cursor:
            pager.append(Markup(f'<a id="older" href="/ops/calls?{escape(urlencode(query.params(cursor=page.next_cursor)))}">Older →</a>'))
        content = render(
            "calls",
            backlog=f.backlog_table(self.backlog.read()),
            status_options=f.options(VideoStatus.ALL, query.status, everything="any status"),
            stage_options=f.options(STAGE_FILTERS, query.stage, everything="any stage"),
            q=query.search or "",
            message=message,
            rows=rows,
            pager=join(pager, ""),
            bulk=bulk_form(self.signer.csrf_token(session), query.params()),
            live=live_marker("/ops/live", any(in_flight(call) for call in page.calls)),
        )
        send_page(resp, title="Calls", content=content, csrf=self.signer.csrf_token(session), status=status)


class CallPage(_Page):
    def __init__(self, signer: SessionSigner, storage: Callable[[], Storage], settings: Settings) -> None:
        super().__init__(signer)
        self._storage = storage
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        session: Session = req.context.session
        self.show(resp, session, find_call(call_id), notice=_notice(req.get_param("retried")))

    def show(
        self, resp: falcon.Response, session: Session, call: Call, *, notice: Markup | str = "", status: str | int = falcon.HTTP_200
    ) -> None:
        now, csrf = utcnow(), self.signer.csrf_token(session)
        view = call_view(call, video_link(self._storage()), now)
        final = view["video_url"]
        side_urls = {side: shown["video_url"] for side, shown in view["sides"].items()}
        videos = []
        if final:
            videos.append(f.video_figure(final, element_id="final-video", caption="Final video", kind="final", poster=view["poster_url"]))
        else:
            videos.append(Markup('<p class="muted" id="no-video">No final video yet.</p>'))
        sides = [
            f.video_figure(url, element_id=f"{side}-video", caption=f"{side} side", kind="side") for side, url in side_urls.items() if url
        ]
        videos_of_sides = [Markup('<div class="videos">'), *sides, Markup("</div>")] if sides else []
        running = in_flight(call)
        content = render(
            "call",
            id=view["id"],
            status=view["status"] or "unknown",
            message=notice,
            live=live_marker(f"/ops/calls/{view['id']}/live", running)
            + (Markup('<p class="notice" id="live-ended" hidden>The call has ended: <a href="">reload</a> to see its video.</p>')
               if running else Markup("")),
            facts=facts(view, now),
            events=events_table(history(call.id)),
            error=Markup(f'<div class="error-box" id="call-error">{escape(view["error"])}</div>') if view["error"] else "",
            no_speech=Markup(NO_SPEECH) if view["no_speech"] else "",
            retry=render("retry", id=view["id"], csrf=csrf) if view["status"] in RETRYABLE else "",
            video=join(videos),
            sides=join([*videos_of_sides, f.sides_table(view["sides"])]),
            timeline=f.timeline_table(view, now),
            segments=f.segments_table(view["segments"]),
            transcript=self._transcript(call, view, "final-video" if final else None),
        )
        send_page(
            resp, title=f"Call {view['id']}", content=content, csrf=csrf, status=status,
            media=[final, *side_urls.values(), *(s["video_url"] for s in view["segments"])],
            images=[view["poster_url"]],
        )


    def _transcript(self, call: Call, view: dict, element_id: str | None) -> Markup:
        """The words under the video; a stored transcript that cannot be read is said, not a broken page."""
        transcript: Transcript | None = None
        problem = None
        try:
            transcript = read_stored_transcript(self._storage(), call, self.settings.transcript_max_bytes)
        except ValueError as exc:
            problem = f"The transcript cannot be shown: {exc}."
        labels = {"caller": call.caller_name or self.settings.caller_label, "callee": call.callee_name or self.settings.callee_label}
        names = {side: (labels[side] or "").strip() or DEFAULT_NAMES[side] for side in SPEAKERS}
        video = (view["video_url"], element_id) if element_id else None
        status = view["transcript_status"] or TranscriptStatus.NONE
        return f.transcript_section(status, view["transcript_error"], transcript, names, video=video, problem=problem)


def _notice(retried: str | None) -> Markup:
    if retried in STAGES:
        return f.message_box(f"Retry sent: the call runs again from the {retried} stage.")
    return Markup("")


class RetryAction(_Page):
    """The retry button: ``shared.retry.retry_call``, then back to the call page."""

    def __init__(self, signer: SessionSigner, page: CallPage) -> None:
        super().__init__(signer)
        self.page = page

    def on_post(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        session, _ = self.checked_post(req)
        call = find_call(call_id)
        try:
            stage = retry(call.id, operator=session.operator)
        except (falcon.HTTPConflict, falcon.HTTPServiceUnavailable) as exc:
            return self.page.show(
                resp, session, Call.get_by_id(call.id), notice=f.message_box(exc.description, bad=True), status=exc.status
            )
        log.info("operator retried call from %s", stage, extra={"call_id": call.id, "stage": stage})
        raise falcon.HTTPSeeOther(f"/ops/calls/{call.id}?retried={stage}")


class StaticResource:
    access = PUBLIC
    uses_database = False

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in STATIC:
            raise falcon.HTTPNotFound()
        resp.content_type = STATIC[name]
        resp.text = resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
        resp.set_header("Cache-Control", "public, max-age=300")
        resp.set_header("X-Content-Type-Options", "nosniff")


class Redirect:
    access = PUBLIC
    uses_database = False

    def __init__(self, target: str) -> None:
        self.target = target

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPFound(self.target)


def add_operator_routes(
    app: falcon.App,
    signer: SessionSigner,
    storage: Callable[[], Storage],
    backlog: BacklogReader,
    throttle: Throttle,
    client: Callable[[falcon.Request], str],
    settings: Settings,
) -> None:
    call_page = CallPage(signer, storage, settings)
    app.add_route("/", Redirect("/ops/overview"))
    app.add_route("/ops", Redirect("/ops/overview"))
    app.add_route(LOGIN_PATH, LoginPage(signer, throttle, client))
    app.add_route("/ops/logout", LogoutAction(signer))
    app.add_route("/ops/calls", CallListPage(signer, backlog))
    app.add_route("/ops/calls/{call_id}", call_page)
    app.add_route("/ops/calls/{call_id}/retry", RetryAction(signer, call_page))
    app.add_route("/ops/static/{name}", StaticResource())
    app.add_route("/ops/live", ListLive())
    app.add_route("/ops/calls/{call_id}/live", CallLive(storage))
    add_bulk_routes(app, signer, settings, storage)
    add_dead_letter_routes(app, signer, settings)
