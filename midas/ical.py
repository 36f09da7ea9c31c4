"""iCalendar (RFC 5545) text: escaped values, UTC times, lines folded at 75 octets and ended by CRLF."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

PRODID = "-//Midas//Bookings//EN"
REFRESH = "PT30M"  # how often a subscribed calendar app should fetch the feed again
MAX_OCTETS = 75


@dataclass
class Event:
    uid: str
    starts_at: datetime
    ends_at: datetime
    stamp: datetime  # when the source record last changed
    summary: str
    description: str = ""
    location: str = ""
    url: str = ""
    status: str = "CONFIRMED"  # or TENTATIVE

    def lines(self) -> list[str]:
        lines = ["BEGIN:VEVENT", f"UID:{escape(self.uid)}", f"DTSTAMP:{utc(self.stamp)}",
                 f"LAST-MODIFIED:{utc(self.stamp)}", f"DTSTART:{utc(self.starts_at)}", f"DTEND:{utc(self.ends_at)}",
                 f"SUMMARY:{escape(self.summary)}", f"STATUS:{self.status}"]
        if self.description:
            lines.append(f"DESCRIPTION:{escape(self.description)}")
        if self.location:
            lines.append(f"LOCATION:{escape(self.location)}")
        if self.url:
            lines.append(f"URL:{self.url}")
        return [*lines, "END:VEVENT"]


def calendar(name: str, events: Iterable[Event]) -> str:
    """A whole VCALENDAR with these events, ready to serve as text/calendar."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             f"X-WR-CALNAME:{escape(name)}", f"NAME:{escape(name)}", f"REFRESH-INTERVAL;VALUE=DURATION:{REFRESH}",
             f"X-PUBLISHED-TTL:{REFRESH}"]
    for event in events:
        lines.extend(event.lines())
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)


def utc(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def escape(text: str) -> str:
    """A TEXT value: backslash, semicolon and comma escaped, newlines as \\n, other control characters dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or (ord(ch) >= 0x20 and ch != "\x7f"))
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def fold(line: str) -> str:
    """Split a content line into lines of at most 75 octets, never inside a UTF-8 character."""
    raw = line.encode()
    parts, start, limit = [], 0, MAX_OCTETS
    while start < len(raw):
        end = min(start + limit, len(raw))
        while end < len(raw) and raw[end] & 0xC0 == 0x80:  # a continuation byte: step back to a character start
            end -= 1
        parts.append(raw[start:end].decode())
        start, limit = end, MAX_OCTETS - 1  # continuation lines begin with a space, which counts
    return "\r\n ".join(parts)
