"""A short human name for the browser behind a session ("Chrome", "Linux") from its User-Agent.
Only for the citizen to recognise their own devices: never used to decide anything."""

from __future__ import annotations

# Order matters: Edge, Opera and Cốc Cốc also say "Chrome"; Chrome also says "Safari".
_BROWSERS = (
    ("coc_coc_browser", "Cốc Cốc"),
    ("Edg", "Edge"),
    ("OPR/", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Zalo", "Zalo"),
    ("Firefox/", "Firefox"),
    ("FxiOS", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
# Android says "Linux" too, iOS says "like Mac OS X".
_SYSTEMS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def describe(user_agent: str | None) -> tuple[str | None, str | None]:
    """(browser, operating system); None for what cannot be told."""
    ua = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    return browser, system
