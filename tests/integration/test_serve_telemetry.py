# SPDX-License-Identifier: Apache-2.0
"""What an operator sees: OpenTelemetry's FaaS metrics on /metrics, a span per call exported
to an OTLP collector (the caller's trace continued into the function), and the status page,
looked at in a real browser."""

import http.server
import json
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import wait_for
from serve_harness import Daemon
from test_serve import shell_bundle
from test_serve_loop import READ_HEAD, http_bundle


class Collector:
    """An OTLP/HTTP receiver on loopback: the JSON documents POSTed to /v1/traces."""

    def __init__(self):
        docs = self.docs = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                docs.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        return [sp for _, _, d in self.docs for rs in d["resourceSpans"]
                for ss in rs["scopeSpans"] for sp in ss["spans"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_opentelemetry_faas_metrics(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    try:
        ok = shell_bundle(ctx, "echo ok", name="ok-b")
        bad = shell_bundle(ctx, "exit 1", name="bad-b")
        slow = shell_bundle(ctx, "sleep 5", name="slow-b")
        assert d.deploy(name="ok", bundle=str(ok.path))[0] == 201
        assert d.deploy(name="bad", bundle=str(bad.path))[0] == 201
        assert d.deploy(name="slow", bundle=str(slow.path), timeout=1)[0] == 201
        for _ in range(3):
            assert d.request("GET", "/function/ok")[0] == 200
        assert d.request("GET", "/function/bad")[0] == 500
        assert d.request("GET", "/function/slow")[0] == 504
        assert d.request("POST", "/async-function/ok", b"x")[0] == 202
        wait_for(lambda: metric(d.request("GET", "/metrics")[2].decode(),
                                "faas_invocations_total", faas_name="ok",
                                faas_trigger="other") == 1, 10, "the asynchronous call")
        text = d.request("GET", "/metrics")[2].decode()
        assert metric(text, "faas_invocations_total", faas_name="ok", faas_trigger="http") == 3
        assert metric(text, "faas_coldstarts_total", faas_name="ok", faas_trigger="http") == 1
        assert metric(text, "faas_errors_total", faas_name="bad", faas_trigger="http") == 1
        assert metric(text, "faas_errors_total", faas_name="ok", faas_trigger="http") == 0
        assert metric(text, "faas_timeouts_total", faas_name="slow", faas_trigger="http") == 1
        assert metric(text, "faas_invoke_duration_seconds_count", faas_name="ok",
                      faas_trigger="http") == 3
        assert metric(text, "faas_init_duration_seconds_count", faas_name="ok") >= 1
        assert metric(text, "faas_mem_usage_bytes_count", faas_name="ok",
                      faas_trigger="http") == 3
        assert "# TYPE faas_invoke_duration_seconds histogram" in text
    finally:
        d.stop()


def test_a_span_per_call_continues_the_callers_trace(ctx):
    col = Collector()
    d = Daemon(ctx, ctx.dir / "faas", args=["--otlp-endpoint", col.url])
    d.start()
    try:
        # the function answers with the traceparent it was given
        b = http_bundle(ctx, "tp", "tp=\nwhile IFS= read -r l; do l=$(printf %s \"$l\" | "
                        "tr -d '\\r'); [ -z \"$l\" ] && break\n"
                        "  case \"$l\" in traceparent:*) tp=${l#traceparent: };; esac; done\n"
                        "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: %s\\r\\n\\r\\n%s' "
                        "${#tp} \"$tp\"\n")
        assert d.deploy(name="tp", bundle=str(b.path), contract="http")[0] == 201
        trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        status, _, body = d.request("GET", "/function/tp",
                                    headers={"traceparent": f"00-{trace}-{parent}-01"})
        assert status == 200, body
        wait_for(lambda: len(col.spans()) >= 2, 10, "the spans at the collector")
        path, ctype, _ = col.docs[0]
        assert path == "/v1/traces" and ctype == "application/json"
        call = next(s for s in col.spans() if s["name"] == "tp")
        cold = next(s for s in col.spans() if s["name"] == "cold start")
        assert (call["traceId"], call["parentSpanId"], call["kind"]) == (trace, parent, 2)
        assert body.decode() == f"00-{trace}-{call['spanId']}-01"  # the function's parent
        a = attrs(call)
        assert (a["faas.name"], a["faas.trigger"], a["faas.coldstart"]) == ("tp", "http", True)
        assert a["http.response.status_code"] in (200, "200")
        assert cold["parentSpanId"] == call["spanId"] and cold["traceId"] == trace
        assert int(call["endTimeUnixNano"]) > int(call["startTimeUnixNano"])
        # a call without a traceparent starts a trace of its own; warm this time
        n = len(col.spans())
        assert d.request("GET", "/function/tp")[0] == 200
        wait_for(lambda: len(col.spans()) > n, 10, "the second span")
        second = col.spans()[-1]
        assert second["traceId"] != trace and "parentSpanId" not in second
        assert attrs(second)["faas.coldstart"] is False
    finally:
        d.stop()
        col.close()


def test_an_unreachable_collector_is_reported_once_and_calls_go_on(ctx):
    d = Daemon(ctx, ctx.dir / "faas", args=["--otlp-endpoint", "http://127.0.0.1:1/v1/traces"])
    d.start()
    try:
        b = shell_bundle(ctx, "echo ok")
        assert d.deploy(name="ok", bundle=str(b.path))[0] == 201
        for i in range(3):
            assert d.request("GET", "/function/ok")[0] == 200
            time.sleep(1.2)  # a batch each
        wait_for(lambda: "did not take spans" in d.log.read_text(), 10, "the warning")
        assert d.log.read_text().count("did not take spans") == 1, d.log.read_text()
    finally:
        d.stop()


def test_a_bad_otlp_endpoint_is_refused_at_start(ctx):
    d = Daemon(ctx, ctx.dir / "faas", args=["--otlp-endpoint", "ftp://x/"])
    with pytest.raises(AssertionError):
        d.start()
    assert "--otlp-endpoint 'ftp://x/'" in d.log.read_text()


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_status_page_in_a_browser(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    try:
        for v in (1, 2):
            b = shell_bundle(ctx, f"echo v{v}", name=f"page-b{v}")
            assert d.deploy(name="page", bundle=str(b.path))[0] == 201
        assert d.fn("alias", "page", "live", "1").returncode == 0
        for path in ("/function/page", "/function/page@live", "/function/nope"):
            d.request("GET", path)
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--user-data-dir=" + str(ctx.dir / "chromium"), "--dump-dom",
                            f"http://127.0.0.1:{d.port}/"],
                           capture_output=True, text=True, timeout=120)
        dom = r.stdout
        assert "<h1>husk serve</h1>" in dom, (r.returncode, r.stderr[-500:])
        fn_rows = re.findall(r'<td class="name">page</td><td>stdio</td>'
                             r'<td class="version">(\d+)</td>', dom)
        assert fn_rows == ["2"], dom
        assert "live→1" in dom.replace("&rarr;", "→")
        calls = re.findall(r'<td class="name">page</td><td>(\d+)</td><td class="status">(\d+)',
                           dom)
        assert sorted(calls) == [("1", "200"), ("2", "200")], calls
        assert re.search(r'<p id="coldstarts">2 cold starts</p>', dom), dom
    finally:
        d.stop()
