# SPDX-License-Identifier: Apache-2.0
"""Help, manual pages and bash completion: all three are made from the tables husk parses its
flags with, so each test compares one of them with what the binary itself says (`--help`).

Help asked for goes to stdout with exit 0, a usage error to stderr with exit 2. The manual pages
and the completion are the ones `meson install` installs from the build of the husk under test;
pages render under groff's warnings and name every flag; completion offers the verbs,
subcommands and flags of each, files for flag values, and the containers and functions husk
itself lists."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HUSK
from serve_harness import Daemon
from test_serve import shell_bundle
from test_start_path import lazy

pytestmark = pytest.mark.husk_behaviour

BUILD = Path(HUSK).parent
FLAG_LINE = re.compile(r"^  (?:-(\w), |    )--([\w-]+)")


def husk(*args, env=None):
    return subprocess.run([HUSK, *args], capture_output=True, text=True, timeout=10, env=env)


def sections(text):
    """{title: [lines]} of a help text: a title is a line ending in ':' at column 0."""
    out, title = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            title = line[:-1]
            out[title] = []
        elif title and line.startswith("  "):
            out[title].append(line)
        else:
            title = None
    return out


def names(lines):
    return [line.split()[0] for line in lines if not line.startswith("   ")]


def flags_of(text):
    """The flags a help text lists, as {"--env": "-e" or None}."""
    found = {}
    for title, lines in sections(text).items():
        if "flags" in title:
            for line in lines:
                m = FLAG_LINE.match(line)
                if m:
                    found["--" + m.group(2)] = "-" + m.group(1) if m.group(1) else None
    return found


def verbs():
    text = husk("--help").stdout
    s = sections(text)
    oci, own = (names(s[t]) for t in s if "commands" in t or "serving" in t)
    return oci, own


def subcommands(verb):
    return names(sections(husk(verb, "--help").stdout).get("subcommands", []))


def check_help(r, command):
    assert r.returncode == 0 and r.stderr == "", r
    assert r.stdout.startswith(f"usage: {command}"), r.stdout
    assert "\n\n\n" not in r.stdout and not re.search(r"[ \t]$", r.stdout, re.M), r.stdout
    for title, lines in sections(r.stdout).items():
        assert lines, f"{command}: empty section '{title}'\n{r.stdout}"


# ---- help


def test_husk_help_three_ways_and_a_usage_error_without_a_command():
    r = husk("--help")
    check_help(r, "husk ")
    assert husk("-h").stdout == husk("help").stdout == r.stdout
    bare = husk()
    assert bare.returncode == 2 and bare.stdout == "" and bare.stderr == r.stdout, bare
    oci, own = verbs()
    assert {"create", "exec", "kill", "update"} <= set(oci) and own == ["pack", "image", "serve",
                                                                          "fn"], r.stdout
    assert set(flags_of(r.stdout)) >= {"--root", "--log", "--log-format", "--debug", "--version"}


def test_every_verb_and_subcommand_answers_help():
    oci, own = verbs()
    for verb in oci + own:
        r = husk(verb, "--help")
        check_help(r, f"husk {verb}")
        assert husk("help", verb).stdout == r.stdout
        assert husk(verb, "-h").stdout == r.stdout
        for sub in subcommands(verb):
            r = husk(verb, sub, "--help")
            check_help(r, f"husk {verb} {sub}")
            assert husk(verb, "help", sub).stdout == r.stdout
            assert husk("help", verb, sub).stdout == r.stdout
    assert subcommands("image") == ["import", "ls", "inspect", "rm", "gc", "df"]
    assert {"deploy", "invoke", "logs", "rollback", "alias"} <= set(subcommands("fn"))


@pytest.mark.parametrize("args,message", [
    (("fn", "bogus"), "husk fn: unknown subcommand 'bogus'"),
    (("image", "bogus"), "husk image: unknown subcommand 'bogus'"),
    (("fn", "help", "bogus"), "husk fn: unknown subcommand 'bogus'"),
    (("fn",), "usage: husk fn SUBCOMMAND"),
    (("image",), "usage: husk image SUBCOMMAND"),
    (("bogus",), "husk: unknown command 'bogus'"),
    (("help", "bogus"), "husk help: unknown command 'bogus'"),
    (("create", "--bogus"), "husk create: unknown flag '--bogus'"),
    (("image", "ls", "--bogus"), "husk image ls: unknown flag '--bogus'"),
    (("fn", "ls", "--memory", "64M"), "husk fn ls: unknown flag '--memory'"),
    (("fn", "logs", "f", "--to", "1"), "husk fn logs: unknown flag '--to'"),
])
def test_usage_errors_exit_2_on_stderr(args, message):
    r = husk(*args)
    assert r.returncode == 2 and r.stdout == "" and message in r.stderr, r
    if "unknown subcommand" in message:
        assert f"usage: husk {args[0]} SUBCOMMAND" in r.stderr, r


def test_fn_subcommands_list_only_the_flags_they_take():
    common = {"--url", "--token-file", "--format"}
    assert set(flags_of(husk("fn", "--help").stdout)) == common
    takes = {sub: set(flags_of(husk("fn", sub, "--help").stdout)) for sub in subcommands("fn")}
    assert takes["ls"] == takes["get"] == takes["rm"] == common
    assert takes["logs"] == common | {"--follow"}
    assert takes["rollback"] == common | {"--to"}
    assert takes["alias"] == common | {"--weight"}
    assert takes["deploy"] == takes["update"]
    assert {"--bundle", "--image", "--dir", "--env", "--memory", "--egress"} <= takes["deploy"]
    assert not takes["deploy"] & {"--follow", "--async", "--weight", "--to", "--method"}
    assert {"--async", "--callback", "--method", "--header", "--version"} <= takes["invoke"]
    assert "--memory" not in takes["invoke"]
    assert flags_of(husk("fn", "invoke", "--help").stdout)["--method"] == "-X"


def test_version_still_answers_without_loading_a_lazy_library():
    env = dict(os.environ, LD_DEBUG="files")
    r = husk("--version", env=env)
    assert r.returncode == 0 and r.stdout.startswith("husk version "), r
    mapped = [line.split("file=")[1].split()[0] for line in r.stderr.splitlines()
              if "file=" in line]
    assert not lazy(mapped), mapped


# ---- manual pages


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """What `meson install` puts in mandir/man1 and bash-completion's directory, under a
    destdir."""
    dest = tmp_path_factory.mktemp("destdir")
    r = subprocess.run(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--destdir",
                        str(dest), "--tags", "man,bash-completion"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    pages = {p.name[:-2]: p for p in dest.glob("usr/local/share/man/man1/*.1")}
    completion = dest / "usr/local/share/bash-completion/completions/husk"
    return {"pages": pages, "completion": completion, "dest": dest}


def render(page):
    env = dict(os.environ, MANWIDTH="200", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0 and r.stderr == "", f"{page}: {r.stderr}"
    return r.stdout.replace("\u2010", "-").replace("\u2212", "-")


def man_flags(text):
    """{"--env": (short, note)} of the flags a rendered page tags (at the tags' indent)."""
    found = {}
    for m in re.finditer(r"^ {7}(?:-(\w), )?--([\w-]+)(?: VALUE| N)?(?: \((.*)\))?$", text,
                         re.M):
        found["--" + m.group(2)] = ("-" + m.group(1) if m.group(1) else None, m.group(3))
    return found


def test_man_pages_are_installed_and_render_without_warnings(installed):
    listed = husk("__doc", "man-pages").stdout.split()
    assert sorted(installed["pages"]) == sorted(listed), installed["pages"]
    assert {"husk", "husk-oci", "husk-serve", "husk-fn", "husk-pack", "husk-image"} <= set(listed)
    for name, page in installed["pages"].items():
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == "", f"{name}: {r.stderr}"
        r = subprocess.run(["lexgrog", str(page)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and f'"{name} - ' in r.stdout, r
        text = render(page)
        assert text.startswith(name.upper() + "(1)"), text[:200]


def assert_names_flags(text, help_text, page):
    listed = man_flags(text)
    for flag, short in flags_of(help_text).items():
        assert flag in listed, f"{page} does not name {flag}"
        assert listed[flag][0] == short, f"{page}: {flag} is {listed[flag][0]}, not {short}"


def test_man_pages_name_every_verb_and_flag(installed):
    pages = installed["pages"]
    oci, own = verbs()
    husk1 = render(pages["husk"])
    assert_names_flags(husk1, husk("--help").stdout, "husk(1)")
    for verb in oci + own:
        assert re.search(rf"^ {{7}}{verb}\b", husk1, re.M), f"husk(1) does not list {verb}"
    oci1 = render(pages["husk-oci"])
    for verb in oci:
        section = re.split(r"\n   (?=\S)", oci1.split(f"\n   {verb}\n", 1)[1], maxsplit=1)[0]
        assert f"husk {verb}" in section, f"husk-oci(1) has no synopsis of {verb}"
        assert_names_flags(section, husk(verb, "--help").stdout, f"husk-oci(1) {verb}")
    for verb in own:
        text = render(pages[f"husk-{verb}"])
        assert_names_flags(text, husk(verb, "--help").stdout, f"husk-{verb}(1)")
        notes = man_flags(text)
        for sub in subcommands(verb):
            assert f"husk {verb} {sub}" in text, f"husk-{verb}(1) has no {sub}"
            sub_flags = flags_of(husk(verb, sub, "--help").stdout)
            assert_names_flags(text, husk(verb, sub, "--help").stdout, f"husk-{verb}(1) {sub}")
            # a flag's note names the subcommands that take it (none: all of them)
            for flag, (_, note) in notes.items():
                takes = note is None or sub in note.split(", ")
                assert takes == (flag in sub_flags), f"husk-{verb}(1): {flag} ({note}), {sub}"


def test_serve_page_documents_every_config_key_and_an_example_that_checks(installed, tmp_path):
    text = render(installed["pages"]["husk-serve"])
    config = text.split("\nCONFIGURATION\n", 1)[1].split("\nSEE ALSO\n", 1)[0]
    keys = dict(re.findall(r"^ {7}([a-z_]+) \((.+)\)$", config, re.M))
    flags = {f[2:].replace("-", "_") for f in flags_of(husk("serve", "--help").stdout)}
    assert set(keys) == (flags - {"config", "check_config"}) | {"log_format"}, keys
    values = {"an integer": 100000, "a string": "1", "a list of strings": ["127.0.0.1/32"],
              "true or false": True, '"text" or "json"': "json"}
    for key, kind in keys.items():
        f = tmp_path / f"{key}.json"
        f.write_text(json.dumps({key: values[kind]}))
        r = husk("serve", "--check-config", "--config", str(f))
        assert "unknown setting" not in r.stderr and f"key '{key}': expected" not in r.stderr, r
    example = config.split("For example:", 1)[1]
    f = tmp_path / "example.json"
    f.write_text(example)
    assert json.loads(example)["log_format"] == "json"
    r = husk("serve", "--check-config", "--config", str(f))
    assert r.returncode == 0 and "the settings are valid" in r.stdout, r
    bad = tmp_path / "bad.json"
    bad.write_text('{"check_config": true}')
    r = husk("serve", "--check-config", "--config", str(bad))
    assert r.returncode == 1 and "unknown setting 'check_config'" in r.stderr, r


# ---- bash completion


def complete(installed, *words, env=None, cwd=None):
    """The candidates _husk offers for words (the last is the one under the cursor)."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _husk; '
              'rc=$?; printf "%s\\n" "${COMPREPLY[@]}"; exit $rc')
    r = subprocess.run(["bash", "-c", script, "bash", str(installed["completion"]), *words],
                       capture_output=True, text=True, timeout=20, env=env, cwd=cwd)
    assert r.returncode == 0 and r.stderr == "", r
    return [w for w in r.stdout.split("\n") if w]


def test_completion_is_installed_where_bash_completion_loads_it(installed):
    r = subprocess.run(["bash", "-c", 'source "$1"; complete -p husk', "bash",
                        str(installed["completion"])], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.strip() == "complete -F _husk husk", r
    r = subprocess.run(["shellcheck", "-s", "bash", str(installed["completion"])],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    loader = Path("/usr/share/bash-completion/bash_completion")
    if not loader.exists():
        pytest.skip("bash-completion is not installed (scripts/deps.sh installs it)")
    env = dict(os.environ, XDG_DATA_DIRS=str(installed["dest"] / "usr/local/share"),
               BASH_COMPLETION_USER_DIR="/nonexistent")
    r = subprocess.run(["bash", "-c", f'source {loader}; __load_completion husk; complete -p husk'],
                       capture_output=True, text=True, timeout=10, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "complete -F _husk husk", r


def test_completion_offers_verbs_subcommands_and_their_flags(installed, tmp_path):
    oci, own = verbs()
    assert complete(installed, HUSK, "") == oci + own + ["help"]
    assert complete(installed, HUSK, "f") == ["features", "fn"]
    assert set(complete(installed, HUSK, "--")) == set(flags_of(husk("--help").stdout)) | {
        "--help"}
    assert complete(installed, HUSK, "help", "") == oci + own
    for verb in oci + own:
        offered = set(complete(installed, HUSK, verb, "-"))
        flags = flags_of(husk(verb, "--help").stdout) if not subcommands(verb) else {}
        assert offered == set(flags) | {s for s in flags.values() if s} | {"--help"}, verb
    for verb in own:
        subs = subcommands(verb)
        if not subs:
            continue
        assert complete(installed, HUSK, verb, "") == subs + ["help"]
        assert complete(installed, HUSK, verb, "help", "") == subs
        assert complete(installed, HUSK, "help", verb, "") == subs
        for sub in subs:
            offered = set(complete(installed, HUSK, verb, sub, "x", "-"))
            flags = flags_of(husk(verb, sub, "--help").stdout)
            assert offered == set(flags) | {s for s in flags.values() if s} | {"--help"}, sub
    # a flag's value and what follows "--" are files
    (tmp_path / "bundle-dir").mkdir()
    assert complete(installed, HUSK, "fn", "deploy", "f", "--bundle", "bun",
                    cwd=tmp_path) == ["bundle-dir"]
    assert complete(installed, HUSK, "fn", "deploy", "f", "--dir", "x", "--", "bun",
                    cwd=tmp_path) == ["bundle-dir"]
    assert complete(installed, HUSK, "pack", "bun", cwd=tmp_path) == ["bundle-dir"]
    assert complete(installed, HUSK, "fn", "logs", "f", "--follow", "") == []


def test_completion_offers_the_containers_husk_lists(ctx, bundle, installed):
    c = ctx.create(bundle)
    assert c.create_result.rc == 0, str(c.create_result)
    assert complete(installed, HUSK, "--root", str(ctx.state), "kill", "") == [c.id]
    assert complete(installed, HUSK, "--root", str(ctx.state), "start", c.id[:9]) == [c.id]
    assert complete(installed, HUSK, "--root", str(ctx.state), "create", "") == []


def test_completion_offers_the_functions_of_the_daemon(ctx, installed):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    try:
        b = shell_bundle(ctx, "cat")
        for name in ("hello", "help-desk", "world"):
            status, body = d.deploy(name=name, bundle=str(b.path))
            assert status == 201, body
        sock = d.socket
        # as bash splits it: --url unix : /PATH
        words = ["--url", "unix", ":", sock]
        for sub in ("get", "rm", "invoke", "logs", "versions", "update", "alias"):
            assert complete(installed, HUSK, "fn", sub, *words, "") == [
                "hello", "help-desk", "world"], sub
        assert complete(installed, HUSK, "fn", "invoke", *words, "hel") == ["hello", "help-desk"]
        assert complete(installed, HUSK, "fn", "get", "--url", "=", "unix", ":", sock,
                        "w") == ["world"]
        env = dict(os.environ, HUSK_URL=f"unix:{sock}")
        assert complete(installed, HUSK, "fn", "logs", "", env=env) == ["hello", "help-desk",
                                                                         "world"]
        assert complete(installed, HUSK, "fn", "call", *words, "") == []
        assert complete(installed, HUSK, "fn", "alias", *words, "hello", "") == []
    finally:
        assert d.stop() in (0, None), d.log.read_text()
    # no daemon: no names, at once
    t0 = time.monotonic()
    assert complete(installed, HUSK, "fn", "get", "--url", f"unix:{sock}", "") == []
    assert time.monotonic() - t0 < 5
