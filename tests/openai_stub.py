"""A small OpenAI-compatible server on loopback that answers from a real LocalTarget, speaking the subset of the
vLLM API RemoteTarget uses: /v1/models, /v1/chat/completions (with continue_final_message), /v1/completions,
/tokenize and /detokenize. Not a test module: tests start it in a thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer:
    def __init__(self, target, model_names: tuple[str, ...] = ("tiny-organism",)):
        self.target, self.models = target, model_names
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()  # one model, one request at a time
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._reply(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in stub.models]})
                else:
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append((self.path, body))
                try:
                    with stub.lock:
                        code, reply = stub.handle(self.path, body)
                except Exception as e:  # the stub reports its own bugs as a server error, like a real server
                    code, reply = 500, {"error": {"message": f"{type(e).__name__}: {e}"}}
                self._reply(code, reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- the API ---------------------------------------------------------------------------------------------

    def _ids(self, body: dict) -> list[int]:
        tok = self.target.tokenizer
        cont = body.get("continue_final_message", False)
        if cont and body.get("add_generation_prompt", True):
            raise ValueError("continue_final_message and add_generation_prompt cannot both be true")
        msgs = body["messages"]
        if cont:
            head = self.target.render(msgs[:-1]) if msgs[-1]["role"] == "assistant" else []
            return head + tok(msgs[-1]["content"], add_special_tokens=False)["input_ids"]
        return self.target.render(msgs)

    def _sample(self, ids: list[int], body: dict) -> list[str]:
        from target_models.targets.sampling import sample

        n = int(body.get("n", 1))
        outs = sample(self.target.model, [ids] * n, max_new_tokens=int(body.get("max_tokens", 16)),
                      temperature=float(body.get("temperature", 1.0)), stop_ids=self.target.stop_ids,
                      pad_id=self.target.tokenizer.pad_token_id, seed=int(body.get("seed") or 0))
        texts = [self.target.tokenizer.decode(o, skip_special_tokens=True) for o in outs]
        for s in body.get("stop") or []:
            texts = [t.split(s)[0] for t in texts]
        return texts

    def handle(self, path: str, body: dict) -> tuple[int, dict]:
        if body.get("model") not in self.models:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
        if "max_tokens" in body and int(body["max_tokens"]) < 1:  # vLLM's wording
            return 400, {"error": {"message": f"max_tokens must be at least 1, got {body['max_tokens']}."}}
        tok = self.target.tokenizer
        if path == "/v1/chat/completions":
            texts = self._sample(self._ids(body), body)
            return 200, {"choices": [{"index": i, "message": {"role": "assistant", "content": t}}
                                     for i, t in enumerate(texts)]}
        if path == "/v1/completions":
            ids = tok(body["prompt"], add_special_tokens=False)["input_ids"]
            return 200, {"choices": [{"index": i, "text": t} for i, t in enumerate(self._sample(ids, body))]}
        if path == "/tokenize":
            ids = tok.apply_chat_template(body["messages"], tokenize=True,
                                          add_generation_prompt=body.get("add_generation_prompt", True))
            ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            return 200, {"tokens": ids, "count": len(ids)}
        if path == "/detokenize":
            return 200, {"prompt": tok.decode(body["tokens"])}
        return 404, {"error": {"message": f"no route {path}"}}
