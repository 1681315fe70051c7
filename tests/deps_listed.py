#!/usr/bin/env python3
"""deps_listed.py SOURCE_ROOT - every Debian package the build and the tests
use is listed in scripts/deps.sh, so that the README's commands work on a
fresh machine. Checked, each through the package that owns the file
(`dpkg -S`):

* every dependency('NAME') of every meson.build: the package of NAME.pc
  (a required one must be in deps.sh's build group: demo.sh installs only
  that; an optional one in a group test.sh installs: build, test, package);
* every find_program() of every meson.build;
* the external commands of scripts/*.sh and tests/*.sh (the words in
  command position that are neither builtins nor functions), and the
  programs and files listed in tests/deps_programs.txt, which the scan
  cannot see.

A program is followed through its symlinks (/usr/bin/cc -> alternatives ->
gcc) and /bin vs /usr/bin (usrmerge); it passes when some package on the
way is listed or Essential. Fails naming each package deps.sh lacks.
Skips (77) where dpkg is absent (not Debian)."""
import os
import re
import shlex
import shutil
import subprocess
import sys

src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.path.join(os.path.dirname(__file__), ".."))
if not shutil.which("dpkg") or not shutil.which("dpkg-query"):
    print("SKIP: no dpkg here: not a Debian system")
    sys.exit(77)

# Dependencies that are not packages: the compiler's own libraries, and
# meson's internal ones.
NOT_PACKAGES = {"threads", "dl", "m", "rt", "openmp", "intl", "iconv"}
GROUPS = ["build", "test", "package", "plot", "fresh-root", "bench"]


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout


deps_sh = os.path.join(src, "scripts", "deps.sh")
listed = {}  # package -> [groups]
for g in GROUPS:
    rc, out = run(deps_sh, "--list", g)
    if rc != 0:
        print(f"FAIL: {deps_sh} --list {g} exited {rc}")
        sys.exit(1)
    for p in out.split():
        listed.setdefault(p, []).append(g)

failures = []
checked = 0


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def source_files(pattern_dirs, name_re):
    for d in pattern_dirs:
        top = os.path.join(src, d)
        if d == ".":
            for root, dirs, files in os.walk(top):
                dirs[:] = [x for x in dirs if not x.startswith((".", "build"))]
                for f in files:
                    if re.fullmatch(name_re, f):
                        yield os.path.join(root, f)
        elif os.path.isdir(top):
            for f in sorted(os.listdir(top)):
                if re.fullmatch(name_re, f):
                    yield os.path.join(top, f)


def rel(path):
    return os.path.relpath(path, src)


def usrmerge_aliases(path):
    out = [path]
    for a, b in (("/bin/", "/usr/bin/"), ("/sbin/", "/usr/sbin/"),
                 ("/lib/", "/usr/lib/"), ("/lib64/", "/usr/lib64/")):
        if path.startswith(a):
            out.append(b + path[len(a):])
        elif path.startswith(b):
            out.append(a + path[len(b):])
    return out


owner_cache = {}  # path -> [packages]


def dpkg_search(paths):
    """Ask dpkg once about many paths (it is slow per call)."""
    paths = [p for p in paths if p not in owner_cache]
    if not paths:
        return
    for p in paths:
        owner_cache[p] = []
    _, out = run("dpkg", "-S", *paths)
    for line in out.splitlines():
        if line.startswith(("diversion by", "local diversion")):
            continue
        names, _, path = line.partition(": ")
        if path in owner_cache:
            owner_cache[path] += [n.strip().split(":")[0]
                                  for n in names.split(",")]


def owners(path):
    """The packages dpkg says own path (or its usrmerge alias)."""
    aliases = usrmerge_aliases(path)
    dpkg_search(aliases)
    for p in aliases:
        if owner_cache[p]:
            return owner_cache[p]
    return []


def prefill(paths):
    dpkg_search([a for p in paths for h in chain(p)
                 for a in usrmerge_aliases(h)])


depends_cache = {}


def listed_dependent(pkg):
    """A listed package that depends on pkg (python3 -> python3-minimal,
    pkg-config -> pkgconf), or None."""
    if not depends_cache:
        for lp in listed:
            rc, out = run("dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", lp)
            for d in re.split(r"[,|]", out if rc == 0 else ""):
                d = d.strip().split(" ")[0].split(":")[0]
                if d:
                    depends_cache.setdefault(d, lp)
        depends_cache.setdefault("", None)
    return depends_cache.get(pkg)


essential_cache = {}


def essential(pkg):
    if pkg not in essential_cache:
        rc, out = run("dpkg-query", "-W", "-f=${Essential}", pkg)
        essential_cache[pkg] = rc == 0 and out.strip() == "yes"
    return essential_cache[pkg]


def chain(path):
    """path, then each symlink hop after it."""
    seen = []
    while path and path not in seen and len(seen) < 12:
        seen.append(path)
        if not os.path.islink(path):
            break
        t = os.readlink(path)
        path = os.path.normpath(os.path.join(os.path.dirname(path), t))
    return seen


def check_file(what, path, where, groups=None):
    """One file used by the build or the tests: some package owning it or a
    hop of its symlink chain must be listed (in `groups`, when given) or
    Essential."""
    global checked
    checked += 1
    found = []
    for hop in chain(path):
        for pkg in owners(hop):
            found.append(pkg)
            ok_groups = listed.get(pkg, [])
            if groups:
                ok_groups = [g for g in ok_groups if g in groups]
            if ok_groups or (not groups and essential(pkg)):
                print(f"ok: {what}: {pkg} ({', '.join(ok_groups) or 'Essential'})")
                return
            via = listed_dependent(pkg)
            if via and (not groups or set(listed[via]) & set(groups)):
                print(f"ok: {what}: {pkg}, a dependency of {via} "
                      f"({', '.join(listed[via])})")
                return
    if not found:
        fail(f"{what} ({path}, used by {where}) belongs to no Debian package")
    elif groups and any(p in listed for p in found):
        fail(f"{what} (used by {where}) comes from package {found[0]}, which "
             f"scripts/deps.sh lists in {', '.join(listed[found[0]])} but not in "
             f"{' or '.join(groups)}")
    else:
        fail(f"{what} (used by {where}) comes from package {found[0]}, "
             f"which scripts/deps.sh does not list")


# 1. meson: dependency() and find_program().
meson_files = list(source_files(["."], r"meson\.build"))
programs = {}  # name -> set of files using it
for mf in meson_files:
    text = open(mf).read()
    for m in re.finditer(r"\bdependency\(\s*'([^']+)'([^)]*)\)", text):
        name, rest = m.group(1), m.group(2)
        if name in NOT_PACKAGES:
            continue
        optional = "required" in rest
        rc, pcdir = run("pkg-config", "--variable=pcfiledir", name)
        pc = os.path.join(pcdir.strip(), name + ".pc")
        if rc != 0 or not os.path.exists(pc):
            fail(f"dependency('{name}') ({rel(mf)}): pkg-config finds no "
                 f"{name}.pc here, so its -dev package is not installed; "
                 f"scripts/deps.sh must list it")
            continue
        check_file(f"dependency('{name}')", pc, rel(mf),
                   ["build", "test", "package"] if optional else ["build"])
    for m in re.finditer(r"\bfind_program\(\s*'([^']+)'", text):
        name = m.group(1)
        if name.endswith((".sh", ".py")):
            continue  # the project's own scripts
        programs.setdefault(name, set()).add(rel(mf))

# 2. the commands of the scripts.
builtins = set(run("bash", "-c", "compgen -b; compgen -k")[1].split())
# words after which the next word is (again) a command: separators, and
# commands that run their arguments
SEPARATORS = {";", "&", "&&", "|", "||", "(", ")", "{", "}", "!", "\n",
              "then", "do", "else", "elif", "if", "while", "until", "time"}
RUNNERS = {"exec": 0, "command": 0, "nice": 0, "env": 0, "xargs": 0,
           "sudo": 0, "timeout": 1, "chroot": 1, "stdbuf": 0,
           "setsid": 0, "check": 1, "step": 1}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*")


def strip_heredocs(text):
    """Drop here-document bodies: they are data (often Python), not shell."""
    out, end = [], None
    for line in text.splitlines():
        if end is not None:
            if line.strip() == end:
                end = None
            continue
        out.append(line)
        m = re.search(r"<<-?\s*(['\"]?)([A-Za-z_]\w*)\1", line)
        if m and "<<<" not in line:
            end = m.group(2)
    return "\n".join(out) + "\n"


def strip_comments(text):
    """Shell comments out, quotes minded: a # starts one only outside
    quotes, after a blank or an operator (not ${#x} nor $#)."""
    out, q, i = [], None, 0
    while i < len(text):
        c = text[i]
        if q is None and c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if c == "\\" and q != "'" and i + 1 < len(text):
            out.append(text[i:i + 2])
            i += 2
            continue
        if c in "'\"" and q in (None, c):
            q = None if q == c else c
        out.append(c)
        i += 1
    return "".join(out)


OPERATOR = re.compile(r"\|\||&&|;;|>>|<<<|<<|>&|<&|&>|[;&|()<>\n]")


def tokens(text):
    text = re.sub(r"\\\n", " ", text)                 # line continuations
    text = strip_comments(text)
    text = re.sub(r"\$?\(\(.*?\)\)", " 0 ", text)     # arithmetic
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>\n")
    lex.whitespace = " \t\r"
    lex.commenters = ""
    lex.wordchars += "$:%@,+[]{}^!#"  # keep words whole
    try:
        toks = list(lex)
    except ValueError as e:
        print(f"note: cannot read this shell text ({e}): {text[:60]!r}")
        return []
    out = []
    for t in toks:  # shlex runs operators together: ");" is ")" ";"
        if re.fullmatch(r"[;&|()<>\n]+", t):
            out += OPERATOR.findall(t)
        else:
            out.append(t)
    return out


def commands(text, functions):
    """The words in command position, recursing into `bash -c STRING`."""
    found = []
    toks = tokens(text)
    at_cmd, skip, runner = True, 0, None
    i = 0
    while i < len(toks):
        t = toks[i]
        i += 1
        if "$(" in t and len(t) > 2:  # a command substitution inside a word
            for sub in re.findall(r"\$\(([^()]*)\)", t):
                found += commands(sub, functions)
        if t in SEPARATORS or re.fullmatch(r"[;&|()<>\n]+", t):
            at_cmd = t not in ("<", ">", ">>", "<<", "<<<", ">&", "<&")
            if not at_cmd:
                i += 1  # the redirection's target
            else:
                at_cmd, skip, runner = True, 0, None
            continue
        if not at_cmd:
            continue
        if skip:
            skip -= 1
            continue
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=.*", t):
            if t.endswith("=") and i < len(toks) and toks[i] == "(":
                while i < len(toks) and toks[i] != ")":
                    i += 1  # an array's words: data
                i += 1
            continue  # VAR=value before a command
        if t.startswith("-") and found and found[-1] in RUNNERS:
            continue  # a runner's option (nice -n 10: the 10 is skipped below)
        if t.isdigit():
            continue
        if t == "trap" and i < len(toks):  # the trap's command
            found += commands(toks[i], functions)
            at_cmd = False
            continue
        if t in ("bash", "sh") and i + 1 < len(toks) and toks[i] == "-c":
            found.append(t)
            found += commands(toks[i + 1], functions)
            i += 2
            at_cmd = False
            continue
        if t == "ip" and toks[i:i + 2] == ["netns", "exec"]:
            found.append("ip")
            i += 3  # ip netns exec NS: then a command
            continue
        if t in RUNNERS:
            found.append(t)
            skip = RUNNERS[t]
            runner = t
            if t == "command" and i < len(toks) and toks[i] == "-v":
                at_cmd = False
            continue
        if NAME.fullmatch(t) and t not in functions and (
                t not in builtins or runner in ("xargs", "nice", "env",
                                                "timeout", "chroot", "sudo",
                                                "setsid", "stdbuf")):
            # (a builtin run by xargs, nice... is the program of that name)
            found.append(t + "\0ext" if t in builtins else t)
        at_cmd = False
    return found


shell_files = list(source_files(["scripts", "tests"], r".*\.sh"))
for sf in shell_files:
    text = strip_heredocs(open(sf).read())
    functions = set(re.findall(r"^\s*([A-Za-z_][\w-]*)\s*\(\)\s*\{", text, re.M))
    functions |= {"check", "expect_error", "step", "setup", "compile", "fail",
                  "say", "die"}  # defined in the files they source
    for c in commands(text, functions):
        if c.endswith("\0ext"):
            c = c[:-4]
        elif c in builtins or c in functions:
            continue
        programs.setdefault(c, set()).add(rel(sf))

# 3. the explicit list.
listfile = os.path.join(src, "tests", "deps_programs.txt")
ignored = set()
files = {}
for line in open(listfile):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name = line.split()[0]
    if name.startswith("!"):
        ignored.add(name[1:])
    elif name.startswith("/"):
        files[name] = "tests/deps_programs.txt"
    else:
        programs.setdefault(name, set()).add("tests/deps_programs.txt")

prefill([w for w in map(shutil.which, programs) if w] +
        ["/usr/bin/" + n for n in programs] + list(files))
for name in sorted(programs):
    if name in ignored:
        continue
    where = ", ".join(sorted(programs[name]))
    path = shutil.which(name)
    if path and not any(owners(h) for h in chain(path)):
        # a local build ahead on PATH (pyenv, /usr/local): what deps.sh
        # installs is the system's
        path = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or path
    if not path:
        # not installed: a word the scan took for a command, or a program
        # that deps.sh should install and has not
        fail(f"program '{name}' (used by {where}) is not installed here: "
             f"scripts/deps.sh should install it (if it is not a command, "
             f"add '!{name}' to tests/deps_programs.txt)")
        continue
    check_file(f"program '{name}'", path, where)
for path, where in sorted(files.items()):
    if not os.path.exists(path):
        fail(f"file {path} (listed in {where}) is not here: "
             f"scripts/deps.sh should install its package")
        continue
    check_file(f"file {path}", path, where)

print(f"{checked} dependencies checked against scripts/deps.sh, "
      f"{len(failures)} not listed")
sys.exit(1 if failures else 0)
