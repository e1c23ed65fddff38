"""An OpenAI-compatible chat-completions server for tests, answering from a reply function."""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable

from tests.servers.base import JsonServer

# reply(messages, request body, choice index) -> assistant text
Reply = Callable[[list[dict[str, str]], dict[str, Any], int], str]


class OpenAIServer(JsonServer):
    """POST /v1/chat/completions and GET /v1/models. `honour_n=False` answers one choice per
    request, like llama.cpp's Python server. Token counts: words of the prompt and the reply."""

    def __init__(self, reply: Reply, model: str = "test-model", honour_n: bool = True) -> None:
        self.reply = reply
        self.model = model
        self.honour_n = honour_n
        self._ids = itertools.count()
        super().__init__(self._route)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0,
                                                     "owned_by": "test"}]}, {}
        if method != "POST" or path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error"}}, {}
        if body.get("model") != self.model:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist",
                                   "type": "invalid_request_error", "code": "model_not_found"}}, {}
        n = int(body.get("n") or 1) if self.honour_n else 1
        texts = [self.reply(body["messages"], body, index) for index in range(n)]
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        completion_tokens = sum(len(t.split()) for t in texts)
        return 200, {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": None} for i, text in enumerate(texts)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }, {}
