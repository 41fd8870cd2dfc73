"""The console's sign-in: a session cookie and the forms' CSRF token, both derived from the
admin token, so nothing is stored and changing `BRIDGE_ADMIN_TOKEN` signs everyone out.

A session value is `<issued unix seconds>.<HMAC-SHA256(admin token, "console-session:" +
issued)>`; it is valid for `SESSION_SECONDS` after it was issued. A form's CSRF token is an
HMAC of the session value, so a page of another session (or another site) cannot post.
"""

from __future__ import annotations

import hashlib
import hmac

SESSION_SECONDS = 12 * 3600


def _mac(admin_token: str, message: str) -> str:
    key = admin_token.encode("utf-8")
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def new_session(admin_token: str, now: float) -> str:
    issued = str(int(now))
    return f"{issued}.{_mac(admin_token, 'console-session:' + issued)}"


def session_is_valid(admin_token: str, value: str, now: float) -> bool:
    issued, dot, mac = value.partition(".")
    if not dot or not issued.isascii() or not issued.isdigit() or len(issued) > 12:
        return False
    expected = _mac(admin_token, "console-session:" + issued).encode()
    if not hmac.compare_digest(mac.encode("ascii", "replace"), expected):
        return False
    return 0 <= now - int(issued) < SESSION_SECONDS


def csrf_token(admin_token: str, session: str) -> str:
    return _mac(admin_token, "console-csrf:" + session)[:32]


def csrf_is_valid(admin_token: str, session: str, presented: str) -> bool:
    expected = csrf_token(admin_token, session)
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode())
