"""The openai backend against a real HTTP server on 127.0.0.1 that injects faults."""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from synth_inputs import tiny_config, write_inputs

from entigraph.backends.base import Request
from entigraph.backends.openai import OpenAIBackend, retry_after
from entigraph.config import SamplingConfig

KEY = "sk-test-9f8e7d6c5b4a"


class FaultServer(ThreadingHTTPServer):
    """Speaks /v1/chat/completions. A prompt containing `fault=<kind>` gets that fault on its first
    attempts (`<kind>*` on every attempt); everything else is answered at once."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.attempts: dict[str, list[float]] = {}
        self.auth: set[str] = set()
        self.seeds: list = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self):
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def send(self, code, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def do_POST(self):
        srv: FaultServer = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        with srv.lock:
            srv.auth.add(self.headers.get("Authorization", ""))
            srv.seeds.append(body.get("seed"))
            n = len(srv.attempts.setdefault(prompt, []))
            srv.attempts[prompt].append(time.monotonic())
        fault = prompt.split("fault=")[1].split()[0] if "fault=" in prompt else ""
        always = fault.endswith("*")
        if fault and (always or n < 2):
            kind = fault.rstrip("*")
            if kind == "500":
                return self.send(500, {"error": {"message": f"overloaded, key {KEY}"}})  # a leaky server
            if kind == "429":
                return self.send(429, {"error": "slow down"}, [("Retry-After", "0.3")])
            if kind == "400":
                return self.send(400, {"error": "bad request"})
            if kind == "slow":
                time.sleep(2.0)  # past the client's timeout
                return self.send(200, {"choices": []})
            if kind == "malformed":
                return self.send(200, b"{not json")
            if kind == "shape":
                return self.send(200, {"choices": [{"message": {}}]})
            if kind == "drop":
                self.close_connection = True
                return  # no response at all: the client sees the connection close
        words = body["max_tokens"]
        self.send(200, {
            "choices": [{"message": {"role": "assistant", "content": f"answer to {prompt[-20:]}"},
                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": words},
        })


@pytest.fixture
def server():
    srv = FaultServer()
    yield srv
    srv.stop()


def backend(srv, **kw):
    kw = {"api_key": KEY, "concurrency": 4, "timeout_s": 1.0, "max_retries": 3, "backoff_s": 0.01, **kw}
    return OpenAIBackend(srv.url, "tiny", **kw)


def req(text, seed=7):
    return Request([{"role": "user", "content": text}], SamplingConfig(max_new_tokens=5), seed)


@pytest.mark.parametrize("fault", ["", "500", "429", "slow", "malformed", "shape", "drop"])
def test_transient_faults_are_retried_until_success(server, fault, caplog):
    b = backend(server)
    with caplog.at_level(logging.WARNING):
        [g] = b.generate([req(f"hello fault={fault} end" if fault else "hello")])
    b.close()
    assert g.finish_reason == "length" and g.error == "" and g.completion_tokens == 5
    assert g.text.startswith("answer to")
    [times] = server.attempts.values()
    assert len(times) == (3 if fault else 1)
    if fault == "429":  # Retry-After: 0.3 was honoured, not the 0.01 s backoff
        assert times[1] - times[0] >= 0.29
    assert server.auth == {f"Bearer {KEY}"} and server.seeds[0] == 7
    assert KEY not in caplog.text


def test_permanent_failures_are_reported_with_their_reason(server, caplog):
    b = backend(server, max_retries=2)
    prompts = ["a fault=500* x", "b fault=400 x", "c fault=slow* x", "d fault=drop* x", "e fault=malformed* x", "f"]
    with caplog.at_level(logging.WARNING):
        gens = b.generate([req(p) for p in prompts])
    b.close()
    reasons = [g.error for g in gens]
    assert [g.finish_reason for g in gens] == ["error"] * 5 + ["length"]
    assert reasons[0].startswith("HTTP 500") and reasons[1].startswith("HTTP 400")
    assert reasons[2] == "timeout" and reasons[3].startswith("connection error")
    assert reasons[4].startswith("malformed response")
    assert len(server.attempts["b fault=400 x"]) == 1  # a 400 is not retried
    assert len(server.attempts["a fault=500* x"]) == 3  # 1 + max_retries
    assert all(KEY not in r for r in reasons) and KEY not in caplog.text  # scrubbed from echoes


def test_unreachable_server_fails_fast_without_crashing():
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "tiny", timeout_s=1.0, max_retries=1, backoff_s=0.01)
    [g] = b.generate([req("x")])
    b.close()
    assert g.finish_reason == "error" and g.error.startswith("connection error")


def test_retry_after_parses_seconds_and_dates():
    assert retry_after("2") == 2.0 and retry_after(None) is None and retry_after("soon") is None
    assert 0 <= retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9


def test_synthesis_through_a_faulty_server(server, tmp_path, monkeypatch, caplog):
    """Every passage is produced or recorded as failed with its reason; a rerun retries the failed
    ones without duplicating; the key reaches neither the store nor the logs."""
    from entigraph.stages import synthesize as synthesis
    from entigraph.synthesis.store import Store

    monkeypatch.setenv("ENTIGRAPH_TEST_KEY", KEY)
    cfg = tiny_config(tmp_path, "tiny", backend="openai", max_passages=16)
    o = cfg.backend.openai
    o.base_url, o.api_key_env, o.timeout_s, o.max_retries, o.backoff_s = server.url, "ENTIGRAPH_TEST_KEY", 1.0, 1, 0.01
    tmpl = tmp_path / "templates"
    tmpl.mkdir()
    # inject faults through the prompt: pairs always fail with a 500, triples time out once
    (tmpl / "pair.txt").write_text("# version: 1\n[user]\n{context}\nfault=500* {entity_1} and {entity_2}\n")
    (tmpl / "triple.txt").write_text("# version: 1\n[user]\n{context}\nfault=slow {entity_1}\n")
    cfg.synthesis.templates_dir = str(tmpl)
    write_inputs(cfg)
    with caplog.at_level(logging.WARNING):
        first = synthesis.run(cfg, progress=False)
        second = synthesis.run(cfg, progress=False)
    with Store(cfg.out / "synthesize" / "store.sqlite") as store:
        rows = list(store.passages(None))
    assert len(rows) == len({r.task_id for r in rows}) == 16
    for r in rows:
        if r.mode == "pair":
            assert r.status == "failed" and r.error.startswith("HTTP 500")
        else:  # summaries at once; triples after the timeout (first run) or on the rerun
            assert r.status == "ok" and r.text.startswith("answer to") and r.backend == "openai"
    assert first["passages"] + first["failed"] == 16
    pairs = sum(r.mode == "pair" for r in rows)
    assert first["failed"] > pairs  # the triples timed out twice (1 + max_retries) in the first run
    assert second["resumed"] == first["passages"] and second["failed"] == pairs
    assert KEY not in caplog.text
    for path in (cfg.out / "synthesize").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


# A key long enough that a cut through it leaves a prefix, and a server that echoes it across the
# 200th character of its error body (and its last 12 characters earlier, as some APIs do).
LONG_KEY = "sk-proj-Q7wZ4mXr2Lp9Vt6Nc3Hy8Bd5Kf1Gs0Ja"


class StraddleHandler(Handler):
    def send(self, code, body, headers=()):
        if code == 500:
            head = f"invalid key ending ...{LONG_KEY[-12:]}; "
            body = (head + "x" * (200 - 16 - len(head)) + LONG_KEY).encode()
            assert body.index(LONG_KEY.encode()) == 184  # 16 characters before the cut, the rest after
        super().send(code, body, headers)


@pytest.fixture
def straddle_server():
    srv = FaultServer()
    srv.RequestHandlerClass = StraddleHandler
    yield srv
    srv.stop()


def key_fragments(key=LONG_KEY, n=8):
    return {key[i:i + n] for i in range(len(key) - n + 1)}


def leaks(text):
    return sorted(f for f in key_fragments() if f in text)


def test_a_key_straddling_the_cut_leaves_no_fragment(straddle_server, caplog):
    b = backend(straddle_server, api_key=LONG_KEY, max_retries=1)
    with caplog.at_level(logging.WARNING):
        [g] = b.generate([req("a fault=500* x")])
    b.close()
    assert leaks(g.error) == [] and leaks(caplog.text) == []
    assert g.finish_reason == "error" and g.error.startswith("HTTP 500: invalid key ending ...***")
    assert "request failed" in caplog.text


def test_a_key_straddling_the_cut_reaches_no_file_of_a_synthesis_run(straddle_server, tmp_path, monkeypatch, caplog):
    from entigraph.errors import EntigraphError
    from entigraph.stages import synthesize as synthesis

    monkeypatch.setenv("ENTIGRAPH_TEST_KEY", LONG_KEY)
    cfg = tiny_config(tmp_path, "tiny", backend="openai", max_passages=4)
    o = cfg.backend.openai
    o.base_url, o.api_key_env, o.timeout_s, o.max_retries, o.backoff_s = (
        straddle_server.url, "ENTIGRAPH_TEST_KEY", 1.0, 1, 0.01)
    tmpl = tmp_path / "templates"
    tmpl.mkdir()
    for mode in ("pair", "triple"):
        (tmpl / f"{mode}.txt").write_text(f"# version: 1\n[user]\n{{context}}\nfault=500* {{entity_1}} {mode}\n")
    cfg.synthesis.templates_dir = str(tmpl)
    cfg.synthesis.modes = ["pair", "triple"]
    write_inputs(cfg)
    message = ""
    with caplog.at_level(logging.WARNING):
        try:
            synthesis.run(cfg, progress=False)
        except EntigraphError as e:  # a run in which every request failed may say so
            message = str(e)
    assert leaks(message) == [] and leaks(caplog.text) == []
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "failed.jsonl" for p in files)
    for path in files:
        assert leaks(path.read_bytes().decode("utf-8", "replace")) == [], path


# Several endpoints: least outstanding requests, a dead endpoint taken out, every passage once.


class DyingHandler(Handler):
    """Answers as Handler until the server has served `die_after` requests; then drops the request
    in flight and shuts the server down (new connections are refused)."""

    def do_POST(self):
        srv = self.server
        with srv.lock:
            srv.served = getattr(srv, "served", 0) + 1
            dying = srv.die_after is not None and srv.served > srv.die_after
        if dying:
            self.close_connection = True
            if not getattr(srv, "dead", False):
                srv.dead = True
                threading.Thread(target=srv.stop, daemon=True).start()
            return
        time.sleep(0.005)  # a little service time, so load spreads over both endpoints
        super().do_POST()


@pytest.fixture
def two_servers():
    servers = []
    for _ in range(2):
        srv = FaultServer()
        srv.RequestHandlerClass = DyingHandler
        srv.die_after = None
        servers.append(srv)
    yield servers
    for srv in servers:
        if not getattr(srv, "dead", False):
            srv.stop()


def test_requests_are_balanced_over_endpoints(two_servers):
    b = OpenAIBackend([s.url for s in two_servers], "tiny", concurrency=4, timeout_s=2.0, max_retries=1, backoff_s=0.01)
    gens = b.generate([req(f"prompt {i}") for i in range(40)])
    detail = b.detail
    b.close()
    assert all(g.finish_reason == "length" and g.text.endswith(f"prompt {i}") for i, g in enumerate(gens))
    counts = [sum(len(v) for v in s.attempts.values()) for s in two_servers]
    assert sum(counts) == 40 and min(counts) >= 10, counts  # both carried a fair share
    assert [e["ok"] for e in detail["endpoints"]] == counts


def test_a_dead_endpoint_is_taken_out_and_retried_later(two_servers, caplog):
    alive, dying = two_servers
    dying.die_after = 3
    b = OpenAIBackend([dying.url, alive.url], "tiny", concurrency=2, timeout_s=2.0, max_retries=0, backoff_s=0.01,
                      endpoint_backoff_s=0.2)
    with caplog.at_level(logging.WARNING):
        gens = b.generate([req(f"p {i}") for i in range(30)])
        # past the back-off: the dead endpoint is tried again, fails, goes out again
        time.sleep(max(0.0, b.endpoints[0].down_until - time.monotonic()) + 0.05)
        more = b.generate([req(f"q {i}") for i in range(6)])
    detail = b.detail["endpoints"]
    b.close()
    # max_retries=0: no request may fail, the move to the other endpoint spends no retry
    assert all(g.finish_reason == "length" for g in gens + more)
    assert [g.text for g in gens] == [f"answer to p {i}" for i in range(30)]
    assert detail[0]["ok"] == 3 and detail[0]["outages"] >= 2 and detail[1]["ok"] == 33
    assert "taken out" in caplog.text


def test_synthesis_over_two_endpoints_one_killed_mid_run(two_servers, tmp_path):
    """Every passage exactly once: store rows == tasks, no duplicates, nothing missing."""
    from entigraph.stages import synthesize as synthesis
    from entigraph.synthesis.store import Store

    alive, dying = two_servers
    dying.die_after = 10
    cfg = tiny_config(tmp_path, "tiny", backend="openai", max_passages=40)
    o = cfg.backend.openai
    o.base_urls = [alive.url, dying.url]
    o.base_url = "http://127.0.0.1:9/v1"  # unused: the list wins
    o.timeout_s, o.max_retries, o.backoff_s, o.endpoint_backoff_s = 2.0, 1, 0.01, 0.5
    write_inputs(cfg)
    summary = synthesis.run(cfg, progress=False)
    with Store(cfg.out / "synthesize" / "store.sqlite") as store:
        rows = list(store.passages(None))
        attempts = store.totals()["attempts"]
    assert summary["passages"] == 40 and summary["failed"] == 0
    assert len(rows) == len({r.task_id for r in rows}) == 40 == attempts
    assert all(r.status == "ok" and r.text.startswith("answer to") for r in rows)
    assert getattr(dying, "dead", False)
    served = [sum(len(v) for v in s.attempts.values()) for s in (alive, dying)]
    assert served[1] == 10 and served[0] == 30  # every passage answered once, by one endpoint
    ends = summary["backend_detail"]["endpoints"]
    assert [e["ok"] for e in ends] == [30, 10] and ends[1]["outages"] >= 1
