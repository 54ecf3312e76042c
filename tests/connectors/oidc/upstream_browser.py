"""A browser stand-in for the upstream's pages: follows redirects, submits the operator's
confirmation form, and stops at the redirect to NIXA's callback (no server needed there)."""

from __future__ import annotations

import contextlib
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

MAX_STEPS = 12


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attributes.get("action") or ""
        elif tag == "input" and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""


def _same_endpoint(url: str, callback: str) -> bool:
    a, b = urlsplit(url), urlsplit(callback)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


def sign_in_at_upstream(
    authorization_url: str,
    callback: str,
    *,
    action: str = "confirm",
    msisdn: str | None = None,
    pages: list[str] | None = None,
    browser: httpx.Client | None = None,
) -> dict[str, str]:
    """Drive the upstream from the authorization URL to the callback; return the callback's
    query parameters. `action` is the button pressed: "confirm" or "deny". `browser` keeps the
    upstream's cookies across calls (its session); by default each call is a new browser."""
    with contextlib.nullcontext(browser) if browser else httpx.Client(timeout=5.0, follow_redirects=False) as browser:
        response = browser.get(authorization_url)
        for _ in range(MAX_STEPS):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if _same_endpoint(location, callback):
                    return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
                response = browser.get(location)
            elif response.status_code == 200 and "<form" in response.text:
                if pages is not None:
                    pages.append(response.text)
                form = _FormParser()
                form.feed(response.text)
                fields = {**form.fields, "action": action}
                if msisdn is not None:
                    fields["msisdn"] = msisdn
                response = browser.post(urljoin(str(response.url), form.action or ""), data=fields)
            else:
                raise AssertionError(f"unexpected upstream answer {response.status_code}: {response.text[:500]}")
    raise AssertionError("the upstream never redirected to the callback")
