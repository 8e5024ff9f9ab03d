#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Large bodies through `husk serve`'s http contract, against the direct call.

Run as root: /usr/bin/python3 bench/body_bench.py [--husk PATH] [--mib N] [--runs N]

In one run, on this machine: a Node.js server (written here: GET answers N bytes with a
Content-Length, POST counts the bytes it is sent) deployed as an http function from a root
packed by `husk pack`, and the same script run on the host on a free loopback port. curl (a C
client: no polling) downloads and uploads --mib MiB --runs times each way, husk and direct
interleaved; curl's own upload waits for `100 Continue`, as it does for any body over 1 MiB.
Prints p50 seconds and MB/s per side, the ratio husk / direct, and the CPU time `husk serve`
spent per MiB. Needs root, node and curl. Timing never fails anything: exit 1 when something
could not be set up.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import serve_bench as sv  # noqa: E402  (free_port, start_serve, stop_pid, proc_cpu, wait_port)

REPO = os.path.dirname(HERE)

SERVER = """\
const http = require('http');
http.createServer((q, s) => {
  if (q.method === 'POST') {
    let n = 0;
    q.on('data', (d) => { n += d.length; });
    q.on('end', () => s.end(String(n)));
    return;
  }
  const n = Number(new URL(q.url, 'http://x').searchParams.get('n') || 0);
  s.writeHead(200, { 'Content-Length': n });
  const piece = Buffer.alloc(Math.min(n, 1 << 20), 120);
  let left = n;
  const go = () => {
    while (left > 0) {
      const k = Math.min(left, piece.length);
      left -= k;
      if (!s.write(k === piece.length ? piece : piece.subarray(0, k))) return s.once('drain', go);
    }
    s.end();
  };
  go();
}).listen(Number(process.env.PORT || 8080), '127.0.0.1');
"""


def p50(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def curl(args):
    """curl's own total time in seconds, and what it printed before it."""
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                        *args], capture_output=True, text=True, check=True)
    code, total = r.stdout.split()
    if code != "200":
        raise RuntimeError(f"curl {args[-1]}: HTTP {code}")
    return float(total)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--husk", default=os.environ.get("HUSK", os.path.join(REPO, "build", "husk")))
    ap.add_argument("--mib", type=int, default=64, help="MiB per transfer (64)")
    ap.add_argument("--runs", type=int, default=10, help="transfers per side and direction (10)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("body_bench: run as root")
    node, curl_bin = shutil.which("node"), shutil.which("curl")
    if not node or not curl_bin:
        sys.exit("body_bench: needs node and curl")
    node = os.path.realpath(node)
    size = args.mib << 20
    work = tempfile.mkdtemp(prefix="husk-body-bench-", dir="/var/tmp")  # not /tmp: the tmpfs
    os.chmod(work, 0o755)
    serve = direct = None
    load0 = os.getloadavg()
    try:
        script = os.path.join(work, "body.js")
        with open(script, "w") as f:
            f.write(SERVER)
        blob = os.path.join(work, "blob")
        with open(blob, "wb") as f:
            f.truncate(size)
        root = os.path.join(work, "root")
        subprocess.run([args.husk, "pack", "-f", "rootfs", "-o", root, node, script],
                       check=True, capture_output=True)
        serve, port, admin = sv.start_serve(args.husk, work)
        subprocess.run([args.husk, "fn", "deploy", "body", "--url", admin, "--dir", root,
                        "--contract", "http", "--memory", str(512 << 20), "--max-body",
                        str(size + 1), "--timeout", "120", "--", node, script],
                       check=True, capture_output=True)
        dport = sv.free_port()
        direct = subprocess.Popen([node, script], env={"PORT": str(dport)},
                                  preexec_fn=sv.set_pdeathsig)
        if not sv.wait_port(dport, direct, 10):
            raise RuntimeError("the direct server did not listen")
        urls = {"husk": f"http://127.0.0.1:{port}/function/body/", "direct": f"http://127.0.0.1:{dport}/"}
        curl(["-X", "GET", urls["husk"] + "?n=1"])  # the cold start, not timed
        times = {(side, way): [] for side in urls for way in ("download", "upload")}
        cpu0 = sv.proc_cpu(serve.pid)
        for _ in range(args.runs):
            for side, url in urls.items():
                times[(side, "download")].append(curl([f"{url}?n={size}"]))
                times[(side, "upload")].append(curl(["--data-binary", f"@{blob}", url]))
        cpu1 = sv.proc_cpu(serve.pid)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"body_bench: {e}", file=sys.stderr)
        return 1
    finally:
        sv.stop_pid(direct)
        sv.stop_pid(serve)
        shutil.rmtree(work, ignore_errors=True)
    mib = args.mib
    for way in ("download", "upload"):
        h, d = p50(times[("husk", way)]), p50(times[("direct", way)])
        print(f"{way:8}  {mib} MiB  husk {h:.3f} s ({mib / h:7.1f} MiB/s)  "
              f"direct {d:.3f} s ({mib / d:7.1f} MiB/s)  husk/direct time {h / d:.2f}x")
    if isinstance(cpu0, tuple) and isinstance(cpu1, tuple):
        ns = cpu1[2] - cpu0[2]  # coarse: threads' time, ended ones too
        print(f"husk serve CPU: {ns / 1e6 / (2 * args.runs * mib):.2f} ms per MiB moved")
    print("load average: %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end"
          % (*load0, *os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
