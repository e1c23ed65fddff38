"""One retry policy for every HTTP backend: exponential backoff with jitter on failures that are
worth waiting out (timeouts, dropped connections, 429, 5xx), honouring Retry-After."""

from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

T = TypeVar("T")


def retry_after_seconds(error: BaseException) -> float | None:
    """The server's Retry-After, in seconds, when the error carries an HTTP response with one."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


async def with_retries(call: Callable[[], Awaitable[T]], *, transient: Callable[[BaseException], bool],
                       attempts: int, wait_s: float, max_wait_s: float = 60.0) -> T:
    """`call()` until it succeeds, a non-transient error occurs, or `attempts` tries are spent;
    the last error is re-raised for the backend to turn into a clear message."""
    backoff = wait_random_exponential(multiplier=wait_s, max=max_wait_s)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        server_says = retry_after_seconds(error) if error else None
        return min(server_says, max_wait_s) if server_says is not None else backoff(state)

    retrying = AsyncRetrying(stop=stop_after_attempt(max(1, attempts)), wait=wait,
                             retry=retry_if_exception(transient), reraise=True)
    return await retrying(call)
