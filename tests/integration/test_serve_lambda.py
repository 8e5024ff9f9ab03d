# SPDX-License-Identifier: Apache-2.0
"""`husk serve`'s lambda contract and its Lambda Invoke front door, driven by real clients: the
AWS custom-runtime tutorial's bash bootstrap, the official Node.js runtime interface client
(aws-lambda-ric from npm, built here), Debian's AWS CLI, a burst of concurrent callers, and a
bootstrap that misbehaves on request against the Runtime API."""

import base64
import concurrent.futures
import glob
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import HUSK, REPO, pid_alive, wait_for
from serve_harness import cgroup_pids
from serve_harness import serve_cgroup  # noqa: F401 (imported from here by other tests)
from test_serve import daemon  # noqa: F401 (fixture)
from test_serve_pools import fn_get

FUNCTIONS = Path(__file__).resolve().parent / "functions"
TUTORIAL = FUNCTIONS / "lambda-shell"  # the tutorial's bootstrap and function.sh
FAULTY = FUNCTIONS / "lambda-faulty" / "bootstrap"
# the examples built beside the husk under test
EXAMPLES = Path(os.environ.get("HUSK_EXAMPLES", Path(HUSK).resolve().parent / "examples" /
                               "functions"))
LAMBDA_HELLO = str(EXAMPLES / "lambda-hello")
AWS = "/usr/bin/aws"  # Debian's awscli (scripts/deps.sh awscli), not another `aws` on PATH
RIC_VERSION = "3.3.0"  # the last aws-lambda-ric for Node.js 20 (4.x needs 22)
CACHE = Path(os.environ.get("HUSK_IT_CACHE", "/var/tmp/husk-it-cache"))
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# ---------------------------------------------------------------------------------------------
# roots, daemons, callers


def pack_tree(out, program, *files, add=()):
    """`husk pack -f rootfs -o OUT PROGRAM FILE... -a SRC:DST...`: a root holding the program,
    the files, each with what it needs, and the additions."""
    args = [a for src, dst in add for a in ("-a", f"{src}:{dst}")]
    r = subprocess.run([HUSK, "pack", "-f", "rootfs", "-o", str(out), *args, str(program),
                        *map(str, files)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return out


def pack_root(ctx, name, program, *files, add=()):
    return pack_tree(ctx.dir / name, program, *files, add=add)


def shared_root(session, name, make):
    """A root packed once per run, in the run's temp dir, for every test that reads it."""
    out = session.base / name
    if not out.exists():
        make(out)
    return out


@pytest.fixture(scope="module")
def tutorial_root(session):
    """The tutorial's bootstrap at /var/task/bootstrap, its handler beside it, and what the
    bootstrap runs (husk pack reads the script for its commands). Its `#!/bin/sh` is bash on
    Lambda's Amazon Linux, so it is here too."""
    def make(out):
        pack_tree(out, TUTORIAL / "bootstrap", "/bin/bash",
                  add=[(TUTORIAL / "bootstrap", "/var/task/bootstrap"),
                       (TUTORIAL / "function.sh", "/var/task/function.sh")])
        os.unlink(out / "usr" / "bin" / "sh")
        os.symlink("bash", out / "usr" / "bin" / "sh")
    return shared_root(session, "lambda-tutorial", make)


@pytest.fixture(scope="module")
def faulty_root(session):
    """The misbehaving bootstrap as a layer's: /opt/bootstrap."""
    return shared_root(session, "lambda-faulty", lambda out: pack_tree(
        out, FAULTY, add=[(FAULTY, "/opt/bootstrap")]))


def deploy_ok(daemon, name, root, *args):
    """`husk fn deploy NAME --dir ROOT --contract lambda ARGS...`; the function as `fn get`
    shows it."""
    r = subprocess.run([HUSK, "fn", "deploy", name, "--url", daemon.admin_url, "--format", "json",
                        "--dir", str(root), "--contract", "lambda", *map(str, args)],
                       capture_output=True, timeout=30, env=daemon.ctx.env())
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def invoke(daemon, name, payload, headers=None, timeout=30):
    """The Lambda Invoke API: (status, headers, body)."""
    return daemon.request("POST", f"/2015-03-31/functions/{name}/invocations", payload,
                          headers=headers, timeout=timeout)


def instance_cgroups(daemon, name):
    return glob.glob(f"/sys/fs/cgroup/*/{serve_cgroup(daemon)}/{name}-v*")


def instance_pids(daemon, name):
    pids = set()
    for cg in instance_cgroups(daemon, name):
        pids |= set(cgroup_pids(cg) or ())  # None: gone meanwhile
    return pids


def assert_instances_gone(daemon, name, pids=()):
    wait_for(lambda: not instance_cgroups(daemon, name), 10,
             f"the cgroups of {name}'s instances to go")
    assert not [p for p in pids if pid_alive(p)], "instance processes left"
    counts = fn_get(daemon, name)["instances"]
    assert sum(counts.values()) == 0, counts


def assert_still_serves(daemon, name):
    """The function's instance is still of use, and the only one."""
    status, _, body = invoke(daemon, name, b'{"still": "here"}')
    assert status == 200 and json.loads(body) == {"still": "here"}, body
    assert fn_get(daemon, name)["instances"] == {"starting": 0, "idle": 1, "busy": 0, "frozen": 0}


def function_log(daemon, name):
    r = daemon.fn("logs", name)
    assert r.returncode == 0, r
    return r.stdout.decode(errors="replace")


def aws_error(body):
    j = json.loads(body)
    assert set(j) >= {"errorMessage", "errorType"}, j
    return j


# ---------------------------------------------------------------------------------------------
# the custom-runtime tutorial's bootstrap (bash and curl), unmodified


def test_the_tutorials_shell_bootstrap_answers_on_both_doors(ctx, daemon, tutorial_root):
    fn = deploy_ok(daemon, "tut", tutorial_root, "--handler", "function.handler", "--timeout", 10)
    assert fn["handler"] == "function.handler", fn
    # the Lambda Invoke API: the payload is the event, the handler's output the answer
    status, headers, body = invoke(daemon, "tut", b'{"text":"Hello"}')
    assert status == 200, body
    assert body == b"Echoing request: '{\"text\":\"Hello\"}'"
    assert headers["X-Amz-Executed-Version"] == "1"
    rid = headers["X-Amzn-RequestId"]
    assert UUID.match(rid) and "X-Amz-Function-Error" not in headers
    # an HTTP call is an API Gateway HTTP API event (payload 2.0); a non-JSON answer is a 200
    status, headers, body = daemon.request("POST", "/function/tut/items/7?color=red", b"hi there",
                                           headers={"X-Thing": "t1"})
    assert status == 200, body
    prefix = b"Echoing request: '"
    assert body.startswith(prefix) and body.endswith(b"'"), body
    event = json.loads(body[len(prefix):-1])
    assert event["version"] == "2.0" and event["rawPath"] == "/items/7", event
    assert event["rawQueryString"] == "color=red"
    assert event["queryStringParameters"] == {"color": "red"}
    assert event["headers"]["x-thing"] == "t1"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == b"hi there"
    # the handler's stderr is the function's log, beside START/END/REPORT lines
    log = function_log(daemon, "tut")
    assert '{"text":"Hello"}' in log
    assert f"START RequestId: {rid}" in log and f"REPORT RequestId: {rid}" in log, log
    # one warm instance served both
    assert fn_get(daemon, "tut")["instances"]["idle"] == 1


def test_packing_the_tutorials_bootstrap_finds_every_command_it_runs(ctx):
    """`husk pack bootstrap` alone: the tutorial's `HEADERS="$(mktemp)"` is a command too."""
    out = pack_root(ctx, "tut-alone", TUTORIAL / "bootstrap")
    have = set(os.listdir(out / "usr" / "bin"))
    assert {"curl", "grep", "tr", "cut"} <= have, have
    assert "mktemp" in have, f"mktemp, run in a quoted command substitution, is missing: {have}"


# ---------------------------------------------------------------------------------------------
# the official Node.js runtime interface client (npm aws-lambda-ric, with its native addon)


@pytest.fixture(scope="module")
def ric():
    """aws-lambda-ric, installed once into a cache under /var/tmp (npm builds its addon, with
    aws-lambda-cpp and curl, from source: cmake, make, g++, autoconf, automake, libtool)."""
    pkg = CACHE / f"aws-lambda-ric-{RIC_VERSION}" / "node_modules" / "aws-lambda-ric"
    if (pkg / "dist" / "rapid-client.node").exists():
        return pkg
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        pytest.skip("Node.js and npm are not installed")
    try:
        r = subprocess.run([npm, "view", f"aws-lambda-ric@{RIC_VERSION}", "version"],
                           capture_output=True, text=True, timeout=60)
        reachable = r.returncode == 0 and r.stdout.strip() == RIC_VERSION
    except subprocess.TimeoutExpired:
        reachable, r = False, None
    if not reachable:
        pytest.skip("the npm registry is unreachable: "
                    + (r.stderr.strip()[-300:] if r else "no answer in 60 s"))
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aws-lambda-ric-", dir=CACHE))
    try:
        (work / "package.json").write_text('{"private": true}\n')
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--foreground-scripts",
                            f"aws-lambda-ric@{RIC_VERSION}"], cwd=work, capture_output=True,
                           text=True, timeout=1500, env={**os.environ, "MAKEFLAGS": "-j2"})
        assert r.returncode == 0, f"npm install aws-lambda-ric failed:\n{r.stdout[-3000:]}\n" \
                                  f"{r.stderr[-3000:]}"
        try:
            os.rename(work, pkg.parents[1])
        except OSError:  # installed meanwhile by another run
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return pkg


@pytest.fixture(scope="module")
def node_root(session, ric):
    """node and its libraries (husk pack), the client's runtime files in node_modules and the
    handler in /var/task: what a Lambda container image for Node.js holds."""
    handler = FUNCTIONS / "lambda-node" / "index.js"
    mods = "/var/task/node_modules/aws-lambda-ric"
    return shared_root(session, "lambda-node", lambda out: pack_tree(
        out, shutil.which("node"), add=[(handler, "/var/task/index.js"),
                                        (ric / "package.json", f"{mods}/package.json"),
                                        (ric / "bin", f"{mods}/bin"),
                                        (ric / "dist", f"{mods}/dist")]))


def test_the_node_runtime_interface_client(ctx, daemon, node_root):
    node = shutil.which("node")
    deploy_ok(daemon, "nodefn", node_root, "--timeout", 20, "--memory", "256M", "--", node,
              "node_modules/aws-lambda-ric/bin/index.mjs", "index.handler")
    start = time.time()
    status, headers, body = invoke(daemon, "nodefn", b'{"k":["v",1]}')
    assert status == 200, body
    got = json.loads(body)
    assert got["event"] == {"k": ["v", 1]}
    assert got["requestId"] == headers["X-Amzn-RequestId"]
    assert got["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:nodefn"
    assert got["functionName"] == "nodefn" and got["handler"] == "index.handler"
    assert got["taskRoot"] == "/var/task" and got["cwd"] == "/var/task"
    # the deadline it was given is the call's: 20 s from when it came, less what passed
    assert 20000 - (time.time() - start) * 1000 - 1000 < got["remainingMs"] <= 20000, got
    # a handler that throws: Lambda's Unhandled function error, the client's error document
    status, headers, body = invoke(daemon, "nodefn", b'{"fail":"boom"}')
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled", (headers, body)
    err = aws_error(body)
    assert err["errorType"] == "Error" and err["errorMessage"] == "boom", err
    # an HTTP call: the handler's {statusCode, headers, body} is the HTTP answer
    status, headers, body = daemon.request("PATCH", "/function/nodefn/a/b?q=1", b"x")
    assert status == 201, body
    assert headers["x-handled-by"] == "aws-lambda-ric" and body == b"PATCH /a/b q=1"
    # the same warm instance answered them all
    assert fn_get(daemon, "nodefn")["instances"]["idle"] == 1
    assert "Executing 'index.handler' in function directory '/var/task'" in \
        function_log(daemon, "nodefn")


# ---------------------------------------------------------------------------------------------
# Debian's AWS CLI against the front door


def aws(ctx, *args):
    """`aws lambda ARGS... --endpoint-url` with dummy credentials and nothing of the host's
    configuration; returns (exit code, stdout's JSON or None, stderr)."""
    if not os.path.exists(AWS):
        pytest.skip(f"Debian's awscli is not installed ({AWS}; scripts/deps.sh awscli)")
    home = ctx.dir / "aws-home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(home / "no-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"), "AWS_PAGER": "",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}
    r = subprocess.run([AWS, "lambda", *map(str, args)], capture_output=True, text=True,
                       timeout=60, env=env, cwd=ctx.dir)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, r.stderr


def aws_invoke(ctx, daemon, name, payload, outfile, *args):
    return aws(ctx, "invoke", "--endpoint-url", daemon.url, "--function-name", name,
               "--cli-binary-format", "raw-in-base64-out", "--payload", payload, *args, outfile)


@pytest.fixture
def hello(ctx, daemon):
    """examples/functions/lambda-hello, packed, deployed by its command."""
    root = pack_root(ctx, "hello", LAMBDA_HELLO)
    deploy_ok(daemon, "hello", root, "--memory", "64M", "--timeout", 10, "--", LAMBDA_HELLO)
    return "hello"


def test_aws_cli_invoke_request_response_and_log_tail(ctx, daemon, hello):
    out = ctx.dir / "out.json"
    rc, res, err = aws_invoke(ctx, daemon, hello, '{"a": 1}', out)
    assert rc == 0, err
    assert res == {"StatusCode": 200, "ExecutedVersion": "1"}, res
    answer = json.loads(out.read_text())
    assert answer["hello"] == "world" and answer["eventLength"] == len('{"a": 1}'), answer
    # --log-type Tail: the call's log lines, base64, with its request id
    rc, res, err = aws_invoke(ctx, daemon, hello, '{}', out, "--log-type", "Tail")
    assert rc == 0, err
    rid = json.loads(out.read_text())["requestId"]
    tail = base64.b64decode(res["LogResult"]).decode()
    lines = tail.splitlines()
    assert lines[0].startswith(f"START RequestId: {rid}"), tail
    assert f"END RequestId: {rid}" in lines, tail
    report = [ln for ln in lines if ln.startswith(f"REPORT RequestId: {rid}")]
    assert len(report) == 1, tail
    assert re.search(r"\tDuration: [0-9.]+ ms\tBilled Duration: [0-9]+ ms\tMemory Size: 64 MB"
                     r"\tMax Memory Used: [0-9]+ MB", report[0]), report
    # an explicit $LATEST is the same function, and so is its ARN
    rc, res, err = aws_invoke(ctx, daemon, hello, '{}', out, "--qualifier", "$LATEST")
    assert rc == 0 and res["StatusCode"] == 200, err
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{hello}"
    rc, res, err = aws_invoke(ctx, daemon, arn, '{"b": 2}', out)
    assert rc == 0 and json.loads(out.read_text())["eventLength"] == 8, err


def test_report_memory_size_is_the_one_the_runtime_is_told(ctx, daemon):
    root = pack_root(ctx, "hello", LAMBDA_HELLO)
    deploy_ok(daemon, "nomem", root, "--timeout", 10, "--", LAMBDA_HELLO)
    status, headers, body = invoke(daemon, "nomem", b"{}", headers={"X-Amz-Log-Type": "Tail"})
    assert status == 200, body
    tail = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
    assert "\tMemory Size: 128 MB\t" in tail, tail


def test_aws_cli_event_and_dry_run(ctx, daemon, hello):
    out = ctx.dir / "out.json"
    rc, res, err = aws_invoke(ctx, daemon, hello, '{"async": true}', out,
                              "--invocation-type", "Event")
    assert rc == 0, err
    assert res == {"StatusCode": 202}, res
    assert out.read_text() == ""

    def calls():
        r = daemon.fn("calls", hello)
        assert r.returncode == 0, r
        return json.loads(r.stdout)

    wait_for(lambda: [c["state"] for c in calls()] == ["succeeded"], 10, "the event to run")
    assert json.loads(calls()[0]["result"])["eventLength"] == len('{"async": true}')
    rc, res, err = aws_invoke(ctx, daemon, hello, '{}', out, "--invocation-type", "DryRun")
    assert rc == 0, err
    assert res == {"StatusCode": 204, "ExecutedVersion": "1"}, res
    assert len(calls()) == 1  # a dry run runs nothing


def test_aws_cli_errors(ctx, daemon, hello):
    out = ctx.dir / "err.json"
    # a function error: exit 0, FunctionError, the error document in the output file
    rc, res, err = aws_invoke(ctx, daemon, hello, '"fail"', out)
    assert rc == 0, err
    assert res == {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "1"}, res
    assert json.loads(out.read_text()) == {"errorMessage": "asked to fail", "errorType": "Fail"}
    out.unlink()
    # no such function, or no such version: the CLI's service error, no output file
    for name, qualifier in (("nothere", ()), (hello, ("--qualifier", "7"))):
        rc, res, err = aws_invoke(ctx, daemon, name, '{}', out, *qualifier)
        assert rc == 254, (rc, err)
        assert "ResourceNotFoundException" in err and f"'{name}'" in err, err
        assert not out.exists()


def test_aws_cli_invokes_a_stdio_function(ctx, daemon):
    b = ctx.bundle("stdio")
    b.args("/bin/sh", "-c", 'cat; echo " seen by $Http_Method"')
    b.write()
    status, body = daemon.deploy(name="plain", bundle=str(b.path), timeout=10)
    assert status == 201, body
    out = ctx.dir / "out.json"
    rc, res, err = aws_invoke(ctx, daemon, "plain", '"hi"', out)
    assert rc == 0, err
    assert res == {"StatusCode": 200, "ExecutedVersion": "1"}, res
    assert out.read_text() == '"hi" seen by POST\n'
    b2 = ctx.bundle("stdio-fail")
    b2.args("/bin/sh", "-c", "echo broken; exit 3")
    b2.write()
    assert daemon.deploy(name="plainfail", bundle=str(b2.path), timeout=10)[0] == 201
    rc, res, err = aws_invoke(ctx, daemon, "plainfail", '{}', out)
    assert rc == 0, err
    assert res["FunctionError"] == "Unhandled", res
    assert "broken" in out.read_text()


# ---------------------------------------------------------------------------------------------
# many callers at once


def test_fifty_concurrent_invokes_on_five_instances(ctx, daemon, tutorial_root):
    deploy_ok(daemon, "many", tutorial_root, "--handler", "function.handler", "--max", 5,
              "--timeout", 30)
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(sum(fn_get(daemon, "many")["instances"].values()))
            time.sleep(0.02)

    def call(i):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
        try:
            payload = json.dumps({"caller": i}).encode()
            conn.request("POST", "/2015-03-31/functions/many/invocations", body=payload)
            r = conn.getresponse()
            return r.status, r.read(), payload
        finally:
            conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            results = list(pool.map(call, range(50)))
    finally:
        stop.set()
        watcher.join()
    for status, body, payload in results:
        assert status == 200, body
        assert body == b"Echoing request: '" + payload + b"'"
    assert max(seen) <= 5, seen
    status, _, text = daemon.request("GET", "/metrics")
    starts = re.search(r'^husk_cold_starts_total\{function="many"\} (\d+)$', text.decode(), re.M)
    assert starts and 2 <= int(starts.group(1)) <= 5, text.decode()
    ok = re.search(r'^husk_invocations_total\{function="many",status="200"\} (\d+)$',
                   text.decode(), re.M)
    assert ok and int(ok.group(1)) == 50


# ---------------------------------------------------------------------------------------------
# a runtime that misbehaves: what the Runtime API answers it, and what the caller gets


def test_runtime_api_refuses_bad_responses(ctx, daemon, faulty_root):
    deploy_ok(daemon, "faulty", faulty_root, "--max", 1, "--timeout", 10, "--max-response", 4096)
    # a response for a request id the API never gave: 400 (the call is answered properly)
    status, headers, body = invoke(daemon, "faulty", b'"unknown-id"')
    assert status == 200, body
    assert json.loads(body) == {"unknownIdStatus": 400}
    # a second response for one id is refused, and the caller keeps the first
    status, headers, body = invoke(daemon, "faulty", b'"twice"')
    assert status == 200 and body == b'"first"', body
    wait_for(lambda: "responses: 202 then 4" in function_log(daemon, "faulty"), 5,
             "the runtime to log its second response's status")
    # a response over the function's max_response: 413, and the caller a Lambda error
    status, headers, body = invoke(daemon, "faulty", b'"big"')
    assert status == 200 and headers.get("X-Amz-Function-Error") == "Unhandled", (headers, body)
    assert "payload size" in aws_error(body)["errorMessage"], body
    wait_for(lambda: "big response: 413" in function_log(daemon, "faulty"), 5,
             "the runtime to log the 413")
    assert_still_serves(daemon, "faulty")


def test_a_second_response_for_one_id_is_403(ctx, daemon, faulty_root):
    deploy_ok(daemon, "twice", faulty_root, "--timeout", 10)
    status, headers, body = invoke(daemon, "twice", b'"twice"')
    assert status == 200 and body == b'"first"', body
    wait_for(lambda: "responses: 202 then" in function_log(daemon, "twice"), 5,
             "the runtime to log its second response's status")
    assert "responses: 202 then 403" in function_log(daemon, "twice")


def test_a_response_over_max_response_is_lambdas_size_error(ctx, daemon, faulty_root):
    deploy_ok(daemon, "big", faulty_root, "--timeout", 10, "--max-response", 4096)
    status, headers, body = invoke(daemon, "big", b'"big"')
    assert status == 200 and headers.get("X-Amz-Function-Error") == "Unhandled", (headers, body)
    assert aws_error(body) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
                        "(4096 bytes)."}, body


def test_a_bootstrap_that_exits_before_next(ctx, daemon, faulty_root):
    deploy_ok(daemon, "quits", faulty_root, "-e", "MODE=exit", "--timeout", 10)
    start = time.monotonic()
    status, headers, body = invoke(daemon, "quits", b"{}")
    assert time.monotonic() - start < 5
    assert status == 200 and headers.get("X-Amz-Function-Error") == "Unhandled", (headers, body)
    assert "exited with status 3" in aws_error(body)["errorMessage"], body
    assert "giving up before invocation/next" in function_log(daemon, "quits")
    # the HTTP door says it as a 502
    status, _, body = daemon.request("GET", "/function/quits")
    assert status == 502 and b"exited with status 3" in body, body
    assert_instances_gone(daemon, "quits")


def test_a_bootstrap_that_exits_is_a_runtime_exit_error(ctx, daemon, faulty_root):
    deploy_ok(daemon, "quits", faulty_root, "-e", "MODE=exit", "--timeout", 10)
    status, headers, body = invoke(daemon, "quits", b"{}")
    assert aws_error(body)["errorType"] == "Runtime.ExitError", body


def test_a_bootstrap_that_exits_during_a_call(ctx, daemon, faulty_root):
    deploy_ok(daemon, "crash", faulty_root, "--timeout", 10)
    assert invoke(daemon, "crash", b'"warm"')[2] == b'"warm"'
    pids = instance_pids(daemon, "crash")
    assert pids
    status, headers, body = invoke(daemon, "crash", b'"crash"')
    assert status == 200 and headers.get("X-Amz-Function-Error") == "Unhandled", (headers, body)
    assert "7" in aws_error(body)["errorMessage"], body
    assert "crashing in the middle of a call" in function_log(daemon, "crash")
    assert_instances_gone(daemon, "crash", pids)
    assert invoke(daemon, "crash", b'"again"')[2] == b'"again"'


def test_an_init_that_never_asks_for_an_event(ctx, daemon, faulty_root):
    deploy_ok(daemon, "stuck", faulty_root, "-e", "MODE=hang", "--init-timeout", 1,
              "--timeout", 10)
    start = time.monotonic()
    status, headers, body = invoke(daemon, "stuck", b"{}")
    took = time.monotonic() - start
    assert 0.9 < took < 5, took
    assert status == 200 and headers.get("X-Amz-Function-Error") == "Unhandled", (headers, body)
    assert "within 1 seconds" in aws_error(body)["errorMessage"], body
    assert_instances_gone(daemon, "stuck")


def test_an_init_timeout_names_the_runtime_api(ctx, daemon, faulty_root):
    deploy_ok(daemon, "stuck", faulty_root, "-e", "MODE=hang", "--init-timeout", 1,
              "--timeout", 10)
    msg = aws_error(invoke(daemon, "stuck", b"{}")[2])["errorMessage"]
    assert "port" not in msg and "invocation/next" in msg, msg


def test_a_call_past_the_timeout(ctx, daemon, faulty_root):
    deploy_ok(daemon, "slow", faulty_root, "--timeout", 1)
    assert invoke(daemon, "slow", b'"warm"')[0] == 200
    pids = instance_pids(daemon, "slow")
    assert pids
    start = time.monotonic()
    status, headers, body = invoke(daemon, "slow", b'"slow"')
    assert time.monotonic() - start < 4
    assert status == 200 and headers.get("X-Amz-Function-Error") == "Unhandled", (headers, body)
    rid = headers["X-Amzn-RequestId"]
    assert aws_error(body) == {"errorMessage": f"{rid} Task timed out after 1.00 seconds",
                               "errorType": "Sandbox.Timedout"}, body
    assert_instances_gone(daemon, "slow", pids)
    # the next call gets a new instance
    status, _, body = invoke(daemon, "slow", b'"again"')
    assert status == 200 and body == b'"again"', body


def test_an_invalid_response_mode_is_a_400_and_the_callers_error(ctx, daemon, faulty_root):
    """A response whose Lambda-Runtime-Function-Response-Mode is neither streaming nor
    buffered: the runtime gets a 400 naming the header, and the caller an error at once
    naming it too (not a wait for the timeout)."""
    deploy_ok(daemon, "mode", faulty_root, "--max", 1, "--timeout", 10)
    start = time.monotonic()
    status, headers, body = invoke(daemon, "mode", b'"badmode"')
    assert time.monotonic() - start < 5, "the caller waited for the timeout"
    assert status == 200 and headers.get("X-Amz-Function-Error") == "Unhandled", (headers, body)
    msg = aws_error(body)["errorMessage"]
    assert "Lambda-Runtime-Function-Response-Mode" in msg and "sideways" in msg, body
    wait_for(lambda: "bad mode: 400" in function_log(daemon, "mode"), 5,
             "the runtime to log the 400")
    assert_still_serves(daemon, "mode")


def test_a_response_after_the_deadline_reaches_no_one(ctx, daemon, faulty_root):
    """The runtime answers 3 s after a 1 s timeout: the caller has its 504 at the deadline, on
    a connection that stays usable and carries nothing more; the instance goes at the deadline,
    so its late answer is never accepted, and the next call is answered by itself."""
    deploy_ok(daemon, "late", faulty_root, "-e", "MODE=late", "--timeout", 1)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        start = time.monotonic()
        conn.request("POST", "/function/late", body=b"first")
        r = conn.getresponse()
        body = r.read()
        took = time.monotonic() - start
        assert r.status == 504 and b"timed out" in body, (r.status, body)
        assert 0.9 < took < 3, f"the 504 came after {took:.1f}s, the deadline is 1 s"
        pids = instance_pids(daemon, "late")
        assert_instances_gone(daemon, "late", pids)
        time.sleep(3)  # past the moment the runtime would have answered
        # nothing more came on the caller's connection, which serves its next request
        conn.sock.settimeout(0.5)
        try:
            extra = conn.sock.recv(65536, socket.MSG_PEEK)
        except TimeoutError:
            extra = b""
        assert extra == b"", extra
        conn.sock.settimeout(10)
        conn.request("GET", "/_/health")
        r = conn.getresponse()
        assert r.status == 200, r.read()
        r.read()
    finally:
        conn.close()
    assert "late response: 202" not in function_log(daemon, "late")
    # a second caller: a 504 of its own, not the first call's answer
    status, _, body = daemon.request("POST", "/function/late", b"second")
    assert status == 504 and b"timed out" in body and b"first" not in body, body
