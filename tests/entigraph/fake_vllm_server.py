"""A stand-in for vLLM's OpenAI server on 127.0.0.1, for the server manager's tests (no vLLM needed).

Run as `python fake_vllm_server.py [-m vllm.entrypoints.openai.api_server] --port N [options]`; the
`-m ...` pair is accepted and ignored so the file can stand in for `.venv-vllm/bin/python` through a
wrapper script. Answers GET /v1/models and POST /v1/chat/completions with a deterministic text
("answer: <last line of the prompt>"). Options:
  --die-after K      exit abruptly (os._exit) when the (K+1)-th completion arrives
  --die-once FILE    ... only on the first start (FILE marks that it happened)
  --exit-at-start    exit with code 3 before listening
  --never-ready      listen but answer /v1/models with 503
  --delay S          sleep S seconds before each completion
  --child PIDFILE    spawn a sleeping child process (same process group) and write its PID there
  --served FILE      append each answered prompt's last line to FILE (one line per answer)
  --pidfile FILE     write this process's PID there
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["-m"]:
        argv = argv[2:]
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--served-model-name", default="fake")
    ap.add_argument("--die-after", type=int)
    ap.add_argument("--die-once")
    ap.add_argument("--exit-at-start", action="store_true")
    ap.add_argument("--never-ready", action="store_true")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--child")
    ap.add_argument("--served")
    ap.add_argument("--pidfile")
    args, _ = ap.parse_known_args(argv)  # vLLM's own flags are ignored
    assert args.host == "127.0.0.1"
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))
    if args.exit_at_start:
        print("fake server: refusing to start", flush=True)
        sys.exit(3)
    if args.child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(args.child, "w") as f:
            f.write(str(child.pid))
    die_after = args.die_after
    if args.die_once:
        if os.path.exists(args.die_once):
            die_after = None
        else:
            open(args.die_once, "w").close()
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path != "/v1/models":
                return self.send(404, {"error": "not found"})
            if args.never_ready:
                return self.send(503, {"error": "loading"})
            self.send(200, {"object": "list", "data": [{"id": args.served_model_name, "object": "model"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path != "/v1/chat/completions":
                return self.send(404, {"error": "not found"})
            if body.get("model") != args.served_model_name:
                return self.send(404, {"error": f"model {body.get('model')!r} not served"})
            prompt = body["messages"][-1]["content"]
            if "bad-request" in prompt:
                return self.send(400, {"error": "bad request"})
            with lock:
                count[0] += 1
                if die_after is not None and count[0] > die_after:
                    os._exit(1)  # a crash: in-flight requests see their connection drop
            time.sleep(args.delay)
            last = prompt.strip().splitlines()[-1]
            text = f"answer: {last}"
            with lock:
                if args.served:
                    with open(args.served, "a") as f:
                        f.write(last + "\n")
            self.send(200, {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}})

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"fake server on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
