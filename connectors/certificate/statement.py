"""The sign-in statement a citizen signs with their certificate: what the signature means, in
words a person can read before their USB token signs it.

A bare random challenge can be relayed: a phishing page shows the victim NIXA's challenge, the
victim signs it, the page signs in as the victim. The statement names where the signature is
for (NIXA's origin), for whom (the agency), for which sign-in (a hash of the pending request)
and until when; the signing software refuses a statement whose origin is not the site it was
opened from, and NIXA accepts only the exact statement it issued for this pending request.

One field per line, each labelled Vietnamese first, English second:

    Đăng nhập NIXA bằng chữ ký số / NIXA sign-in with a digital signature
    Nơi đăng nhập / Origin: https://id.example.gov.vn
    Cơ quan / Agency: Cổng dịch vụ công
    Yêu cầu / Request: sha256:...
    Thời điểm tạo / Issued at: 2025-01-01T17:00:00+07:00
    Hết hạn / Expires: 2025-01-01T17:02:00+07:00
    Mã ngẫu nhiên / Nonce: ...
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

HEADER = "Đăng nhập NIXA bằng chữ ký số / NIXA sign-in with a digital signature"
LABELS = {
    "origin": "Nơi đăng nhập / Origin",
    "agency": "Cơ quan / Agency",
    "request": "Yêu cầu / Request",
    "issued_at": "Thời điểm tạo / Issued at",
    "expires": "Hết hạn / Expires",
    "nonce": "Mã ngẫu nhiên / Nonce",
}
# Vietnam keeps UTC+7 all year (no daylight saving): the times read as the citizen's clock does.
VIETNAM = dt.timezone(dt.timedelta(hours=7))
MAX_AGENCY = 200


def origin_of(url: str) -> str:
    """RFC 6454 origin of a URL, as the statement names it: scheme://host[:port], lowercase."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"https": 443, "http": 80}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


def _one_line(value: str, limit: int) -> str:
    """A field value on one line: control characters and runs of spaces become one space, so
    no agency name can add or fake a line of the statement."""
    text = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    return text[:limit]


def _time(at: float) -> str:
    return dt.datetime.fromtimestamp(int(at), VIETNAM).isoformat()


@dataclass(frozen=True)
class Statement:
    origin: str
    agency: str
    request: str
    issued_at: str
    expires: str
    nonce: str

    @classmethod
    def make(cls, *, origin: str, agency: str, request: str, issued_at: float, ttl: int, nonce: str) -> Statement:
        return cls(origin=origin_of(origin), agency=_one_line(agency, MAX_AGENCY) or "-", request=request,
                   issued_at=_time(issued_at), expires=_time(issued_at + ttl), nonce=nonce)

    def text(self) -> str:
        """The exact UTF-8 text that is signed (no trailing newline)."""
        return "\n".join([HEADER, *(f"{LABELS[f.name]}: {getattr(self, f.name)}" for f in fields(self))])

    @classmethod
    def parse(cls, text: str) -> Statement:
        """The statement in `text`, or ValueError when it is not one, field for field."""
        lines = text.split("\n")
        if len(lines) != 1 + len(LABELS) or lines[0] != HEADER:
            raise ValueError("not a NIXA sign-in statement")
        values = {}
        for (name, label), line in zip(LABELS.items(), lines[1:]):
            prefix = f"{label}: "
            if not line.startswith(prefix) or not line[len(prefix):]:
                raise ValueError(f"the statement's line {label!r} is missing or out of place")
            values[name] = line[len(prefix):]
        return cls(**values)
