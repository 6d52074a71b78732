"""How the TMDb credential travels, and how it is kept out of messages and log lines.

TMDb accepts two credentials on its v3 API:

* a v4 *read access token* (a JWT, ``eyJ...``), sent as ``Authorization: Bearer ...``. It
  never appears in a URL, so no exception message or urllib3 log line can contain it;
* a v3 *API key* (32 hex digits), which TMDb only accepts as the ``?api_key=`` query
  parameter. It is then part of every API URL, and requests and urllib3 put URLs into
  exception messages and log lines (the request line at DEBUG, "Retrying ... after
  connection broken" at WARNING). :meth:`Credential.scrub` cleans text we raise or print,
  and :func:`scrubbed_logging` filters those loggers while a fetch runs.

Either one goes only to the API: posters are public, the image server never gets it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import requests
from requests.auth import AuthBase

_API_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s'\";,<>)]*", re.IGNORECASE)
# A JWT: three base64url parts; TMDb's read access tokens start with the header '{"alg"...'.
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")
# Loggers whose records may carry a request URL; our own package's are added as well.
_URL_LOGGER_ROOTS = frozenset({"urllib3", "requests"})
_PACKAGE_LOGGER = __name__.rpartition(".")[0]


def is_read_access_token(secret: str) -> bool:
    """True for a v4 read access token (a JWT), False for anything else (a v3 API key)."""
    return _JWT.fullmatch(secret) is not None


class Credential(AuthBase):
    """A TMDb API key or read access token, as a requests ``auth`` for API calls.

    Its ``repr`` hides the secret, so the object is safe in tracebacks and debug output.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret.strip()
        self.is_token = is_read_access_token(self._secret)

    def __bool__(self) -> bool:
        return bool(self._secret)

    def __repr__(self) -> str:
        kind = "read access token" if self.is_token else "API key"
        return f"Credential({kind}, ***)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the credential to an outgoing API request (requests' ``auth`` hook)."""
        if self.is_token:
            request.headers["Authorization"] = f"Bearer {self._secret}"
        else:
            request.prepare_url(request.url, {"api_key": self._secret})
        return request

    def scrub(self, text: str) -> str:
        """``text`` with every ``api_key=`` value and the secret itself (plain or
        URL-quoted) replaced by ``***``."""
        text = _API_KEY_IN_TEXT.sub(r"\1***", text)
        if self._secret:
            for form in {self._secret, quote(self._secret, safe="")}:
                text = text.replace(form, "***")
        return text


class _ScrubFilter(logging.Filter):
    """Logging filter that scrubs the credential out of a record before any handler sees it."""

    def __init__(self, credential: Credential) -> None:
        super().__init__()
        self._credential = credential

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._credential.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _url_loggers() -> list[logging.Logger]:
    """urllib3's and requests' loggers, and this package's.

    Each is named because a filter only sees records logged on its own logger, not those
    propagated up from children.
    """
    names = {
        name
        for name in logging.Logger.manager.loggerDict
        if name.split(".")[0] in _URL_LOGGER_ROOTS or name.startswith(_PACKAGE_LOGGER)
    }
    names |= {"urllib3.connectionpool", "urllib3.util.retry", _PACKAGE_LOGGER}
    return [logging.getLogger(name) for name in sorted(names)]


@contextmanager
def scrubbed_logging(credential: Credential) -> Iterator[None]:
    """Scrub the credential out of URL-logging loggers for the duration of a fetch."""
    log_filter = _ScrubFilter(credential)
    loggers = _url_loggers()
    for lg in loggers:
        lg.addFilter(log_filter)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(log_filter)
