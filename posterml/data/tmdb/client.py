"""An HTTP session to TMDb: credential, timeouts and retries in one place.

TMDb rate-limits (HTTP 429, with ``Retry-After``) and sometimes fails (5xx, dropped
connections). Retries are urllib3's :class:`~urllib3.util.Retry` mounted on a requests
``HTTPAdapter``: connection failures, 429 and 5xx are retried with exponential backoff,
honouring ``Retry-After`` (capped at two minutes so a bogus header cannot stall a run).

One failure urllib3 never sees: requests always reads response bodies after urllib3 has
returned, so a connection cut in the middle of a body (a poster, mostly) surfaces in
:meth:`TMDbClient.get`. It retries those with the same ``Retry`` object, so one budget and
one backoff cover both kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util import Retry

from posterml.data.tmdb.auth import Credential

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_BASE_URL = "https://api.themoviedb.org"
API_VERSION = "3"
AUTH_ERROR_MESSAGE = "TMDb rejected the API key (HTTP 401): check TMDB_API_KEY"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_FACTOR = 0.5  # waits 0, 1, 2, 4, 8 ... seconds between tries
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 120.0

# A body cut short or timing out after the headers arrived: worth another request.
_BODY_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    requests.ConnectionError,  # what requests raises for a read timeout inside the body
)


class TMDbError(RuntimeError):
    """A TMDb call failed for good (after retries). The message never contains the secret."""


class TMDbAuthError(TMDbError):
    """TMDb answered 401: the credential is wrong; retrying cannot help."""


class _AnnouncedRetry(Retry):
    """urllib3's Retry that says at WARNING level when it retries an HTTP status.

    urllib3 logs those only at DEBUG, so a long 429 wait would look like a hang.
    """

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _AnnouncedRetry:
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        if error is None and response is not None:
            try:
                wait = new.get_retry_after(response) if self.respect_retry_after_header else None
            except InvalidHeader:
                wait = None
            # The path only: the query may hold a v3 API key.
            path = urlsplit(url or "").path
            delay = new.get_backoff_time() if wait is None else wait
            logger.warning(
                "TMDb answered HTTP %d for %s; retry in %.1fs (%s left)",
                response.status,
                path,
                delay,
                new.total,
            )
        return new


def make_retry(max_retries: int) -> Retry:
    """The retry policy: ``max_retries`` retries of connection errors, 429 and 5xx.

    ``raise_on_status=False`` hands back the last failing response when retries run out, so
    the error we raise can say which status it was.
    """
    return _AnnouncedRetry(
        total=max_retries,
        status_forcelist=RETRYABLE_STATUS,
        allowed_methods=frozenset({"GET"}),
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX,
        respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_MAX,
        raise_on_status=False,
    )


def api_root(api_base_url: str | None) -> str:
    """``https://host`` -> ``https://host/3``; None gives TMDb's own API."""
    base = (api_base_url or DEFAULT_API_BASE_URL).rstrip("/")
    version = f"/{API_VERSION}"
    return base if base.endswith(version) else base + version


class TMDbClient:
    """A requests session with TMDb's credential, a timeout and the retry policy.

    Use as a context manager (closes the session). ``api_base_url`` points at another server
    (tests, a proxy); ``/3`` is appended.
    """

    def __init__(
        self,
        credential: Credential,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        self.credential = credential
        self.api_root = api_root(api_base_url)
        self.timeout = timeout
        self._retry = make_retry(max_retries)
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=self._retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __enter__(self) -> TMDbClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def get_json(self, path: str, what: str, **params: Any) -> dict[str, Any]:
        """GET ``{api_root}/{path}`` with the credential; the JSON object it answers."""
        return self.get(f"{self.api_root}/{path}", what, _json_object, params=params)

    def get(
        self,
        url: str,
        what: str,
        read: Callable[[requests.Response], T],
        *,
        params: dict[str, Any] | None = None,
        authenticated: bool = True,
    ) -> T:
        """GET ``url`` and return ``read(response)``; ``read`` consumes the streamed body.

        ``authenticated=False`` sends no credential (the image server). A body cut short
        calls ``read`` again on a new response, so ``read`` must start over cleanly (write
        through :func:`posterml.io.atomic_write`). Raises :class:`TMDbAuthError` on 401 and
        :class:`TMDbError` once retries are spent or on another error status; ``what`` names
        the call in messages.
        """
        auth = self.credential if authenticated else None
        retry = self._retry
        while True:
            try:
                response = self.session.get(
                    url, params=params, auth=auth, stream=True, timeout=self.timeout
                )
            except requests.RequestException as exc:
                reason = self.credential.scrub(f"{type(exc).__name__}: {exc}")
                raise TMDbError(f"{what} failed: {reason}") from None
            with response:
                self._check_status(response, what, authenticated)
                try:
                    return read(response)
                except _BODY_ERRORS as exc:
                    retry = self._count_body_failure(retry, response.url, what, exc)
            retry.sleep()

    def _check_status(self, response: requests.Response, what: str, authenticated: bool) -> None:
        """Raise for an error status (retryable ones were already retried by urllib3)."""
        status = response.status_code
        if status == 401 and authenticated:
            raise TMDbAuthError(AUTH_ERROR_MESSAGE)
        if status >= 400:
            url = self.credential.scrub(response.url)
            raise TMDbError(f"{what} failed: HTTP {status} {response.reason} for {url}")

    def _count_body_failure(self, retry: Retry, url: str, what: str, exc: Exception) -> Retry:
        """Count a body cut short against the retry budget; raise once it is spent."""
        reason = self.credential.scrub(f"{type(exc).__name__}: {exc}")
        try:
            retry = retry.increment("GET", self.credential.scrub(url), error=exc)
        except MaxRetryError:
            raise TMDbError(f"{what} failed: {reason}") from None
        logger.warning("%s: %s; retry in %.1fs", what, reason, retry.get_backoff_time())
        return retry


def _json_object(response: requests.Response) -> dict[str, Any]:
    """The response body as a JSON object; TMDbError naming the URL path if it is not one."""
    try:
        payload = response.json()
    except ValueError:  # requests' JSONDecodeError; a cut body raises before this
        payload = None
    if not isinstance(payload, dict):
        path = urlsplit(response.url).path
        raise TMDbError(f"TMDb answered {path} with something that is not a JSON object")
    return payload
