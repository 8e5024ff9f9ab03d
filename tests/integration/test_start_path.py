# SPDX-License-Identifier: Apache-2.0
"""The start path loads what it uses: starting a container (with the default config, seccomp
filter included) maps none of the libraries that only some verbs need. They are loaded on first
use by those verbs (src/runtime/lazy.h): each would cost every start its loading, relocation
and, for OpenSSL, its initialisation."""

import os
import subprocess

import pytest

import conftest

# Only `husk pack`, `husk image`, `husk serve`, `husk fn` and bridge networking use these.
LAZY = ("libcrypto.", "libssl.", "libsqlite3.", "libelf.", "libelf-", "libcurl.", "libarchive.",
        "libnftables.", "libmnl.", "libz.", "libnettle.")


def lazy(names):
    return [n for n in names if os.path.basename(n).startswith(LAZY)]


@pytest.mark.husk_behaviour
def test_binary_links_none_of_the_libraries_loaded_on_first_use():
    out = subprocess.run(["readelf", "-d", conftest.HUSK], capture_output=True, text=True,
                         check=True).stdout
    needed = [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    assert needed and not lazy(needed), needed


@pytest.mark.husk_behaviour
def test_run_loads_none_of_the_libraries_loaded_on_first_use(ctx, bundle):
    """LD_DEBUG=files lists every object the dynamic loader maps, at start-up and by dlopen."""
    bundle.probe("exit", "0")
    bundle.write()
    env = ctx.env()
    env["LD_DEBUG"] = "files"
    r = subprocess.run([conftest.HUSK, "--root", str(ctx.state), "run", "--bundle",
                        str(bundle.path), ctx.new_id()], env=env, capture_output=True, text=True,
                       timeout=conftest.CALL_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    mapped = [line.split("file=")[1].split()[0] for line in r.stderr.splitlines()
              if "file=" in line]
    assert mapped and not lazy(mapped), mapped
    ctx.assert_nothing_left()
