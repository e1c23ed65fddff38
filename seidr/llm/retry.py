"""One retry policy for every HTTP backend: each attempt has a whole-request deadline, and
failures worth waiting out (timeouts, dropped connections, 429, 5xx, a 200 whose body is not a
reply) are retried with exponential backoff and jitter, honouring Retry-After. When it gives up,
the backend's explanation of the last failure ends the job as one clear line."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from seidr.errors import SeidrError

T = TypeVar("T")
log = logging.getLogger("seidr")

# explain(last error, "after N tries") -> the job-ending message, or None for an error that is
# not the server's fault (a bug), which is re-raised as it is
Explain = Callable[[BaseException, str], str | None]


class BadReply(Exception):
    """The server answered 200 with something that is not a usable reply (not JSON, fields
    missing): as much a fault of the server as a 5xx, so retried like one."""

    def __init__(self, what: str, body: str) -> None:
        super().__init__(f"{what}: {preview(body)}")
        self.what = what
        self.body = body


class ServerStatus(Exception):
    """The server answered with an HTTP error status: what it said, and its response, whose
    Retry-After the policy honours."""

    def __init__(self, status_code: int, said: str, response: object) -> None:
        super().__init__(f"HTTP {status_code}: {said}")
        self.status_code = status_code
        self.said = said
        self.response = response


def preview(body: str, limit: int = 80) -> str:
    """The start of a body, quoted, for a message that must stay one line."""
    return repr(body[:limit]) + ("..." if len(body) > limit else "") if body else "an empty body"


def tries_text(tries: int) -> str:
    return f"after {tries} {'try' if tries == 1 else 'tries'}"


def retry_after_seconds(error: BaseException) -> float | None:
    """The server's Retry-After, in seconds (given as seconds or as an HTTP date), when the error
    carries an HTTP response with one."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN: no usable advice


async def with_retries(call: Callable[[], Awaitable[T]], *, transient: Callable[[BaseException], bool],
                       explain: Explain, where: str, attempts: int, wait_s: float, timeout_s: float,
                       max_wait_s: float = 60.0) -> T:
    """`call()` until it succeeds, a non-transient error occurs, or `attempts` tries are spent.
    Each try may take at most `timeout_s`, all of it (a server that drips bytes cannot stretch
    it), so a request costs at most attempts × timeout_s plus the backoff between tries. Giving
    up raises SeidrError with `explain`'s message; `where` names the endpoint in the log."""
    backoff = wait_random_exponential(multiplier=wait_s, max=max_wait_s)
    tries = 0

    async def attempt() -> T:
        nonlocal tries
        tries += 1
        async with asyncio.timeout(timeout_s):
            return await call()

    def worth_retrying(error: BaseException) -> bool:
        return isinstance(error, (TimeoutError, BadReply)) or transient(error)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        server_says = retry_after_seconds(error) if error else None
        if server_says is None:
            return backoff(state)
        if server_says > max_wait_s:
            log.warning("%s asked to wait %g s (Retry-After); seidr waits at most %g s before trying again",
                        where, server_says, max_wait_s)
        return min(server_says, max_wait_s)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (%s); try %d of %d in %.1f s", where, _brief(error, timeout_s),
                    state.attempt_number + 1, attempts, state.upcoming_sleep)

    retrying = AsyncRetrying(stop=stop_after_attempt(max(1, attempts)), wait=wait, before_sleep=before_sleep,
                             retry=retry_if_exception(worth_retrying), reraise=True)
    try:
        return await retrying(attempt)
    except SeidrError:
        raise
    except Exception as error:  # CancelledError (the search no longer wants the reply) passes
        message = explain(error, tries_text(tries))
        if message is None:
            raise
        raise SeidrError(message) from error


def _brief(error: BaseException | None, timeout_s: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no whole answer within {timeout_s:g} s"
    return f"{type(error).__name__}: {str(error)[:200]}"
