"""A server that speaks Ollama's HTTP API (/api/chat, /api/tags, /api/show, /api/version) as the
official `ollama` client expects it, answering chats from a reply function."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

from tests.servers.base import JsonServer

# reply(messages, request body) -> assistant text
Reply = Callable[[list[dict[str, str]], dict[str, Any]], str]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class OllamaServer(JsonServer):
    def __init__(self, reply: Reply, models: tuple[str, ...] = ("llama3:latest",)) -> None:
        self.reply = reply
        self.models = models
        super().__init__(self._route)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _known(self, name: str) -> bool:
        return name in self.models or f"{name}:latest" in self.models

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and path == "/api/tags":
            return 200, {"models": [{
                "name": name, "model": name, "modified_at": _now(), "size": 4_661_224_676,
                "digest": "365c0bd3c000a25d28ddbf732fe1c6add414de7275464c4e4d1c3b5fcb5d8ad1",
                "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                            "parameter_size": "8.0B", "quantization_level": "Q4_0"}} for name in self.models]}, {}
        if method == "GET" and path == "/api/version":
            return 200, {"version": "0.5.7"}, {}
        if method == "POST" and path == "/api/show":
            if not self._known(body.get("model", "")):
                return 404, {"error": f"model '{body.get('model')}' not found"}, {}
            return 200, {"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                         "details": {"format": "gguf", "family": "llama"}, "model_info": {}}, {}
        if method == "POST" and path == "/api/chat":
            return self._chat(body)
        return 404, {"error": f"no route {method} {path}"}, {}

    def _chat(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        model = body.get("model", "")
        if not self._known(model):
            return 404, {"error": f"model \"{model}\" not found, try pulling it first"}, {}
        started = time.monotonic_ns()
        text = self.reply(body.get("messages", []), body)
        limit = (body.get("options") or {}).get("num_predict")
        words = text.split(" ")
        done_reason = "stop"
        if limit is not None and len(words) > limit:  # a reply cut by the token limit
            text, done_reason = " ".join(words[:limit]), "length"
        prompt_eval = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        timing = {"total_duration": time.monotonic_ns() - started, "load_duration": 1000,
                  "prompt_eval_count": prompt_eval, "prompt_eval_duration": 1000,
                  "eval_count": len(text.split()), "eval_duration": 1000}
        if body.get("stream", True):  # Ollama streams unless told not to: NDJSON chunks, then a done chunk
            chunks = [{"model": model, "created_at": _now(), "message": {"role": "assistant", "content": word + " "},
                       "done": False} for word in text.split(" ")]
            chunks.append({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                           "done": True, "done_reason": done_reason, **timing})
            return 200, chunks, {}
        return 200, {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": text},
                     "done": True, "done_reason": done_reason, **timing}, {}
