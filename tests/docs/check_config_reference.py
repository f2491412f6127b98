#!/usr/bin/env python3
"""check_config_reference.py — ctest docs.config_reference.

docs/configuration.md must document every configuration key there is, so that
the reference cannot drift from the code:

  * every key the loader reads: the key literals of config.cpp (found as
    */config.cpp, wherever the source folders move), qualified by the table
    each table_reader reads ("server" + "spool_dir" -> server.spool_dir);
  * every key in etc/ricochet.toml, the commented-out examples included.

Each key must have an entry of its own in the reference: a heading with its
full name (`### server.spool_dir`, `### delivery.route.host`); each table a
heading with its TOML header (`## [server]`, `## [[delivery.route]]`). And
the other way round: every such heading must name a key or table the loader
accepts, so a removed key cannot stay documented.

Usage: check_config_reference.py [SOURCE_DIR]   (default: this file's ../..)
"""
import glob
import os
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11: the line-based reading below suffices
    tomllib = None

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
problems = []


def loader_keys():
    """(keys, tables) from the loader's source: fully qualified names."""
    sources = [p for p in sorted(glob.glob(os.path.join(ROOT, "*", "config.cpp")))
               if "table_reader" in open(p, encoding="utf-8").read()]
    if not sources:
        sys.exit(f"FAIL: no */config.cpp with the configuration loader (table_reader) under {ROOT}")
    keys, tables, sections = set(), set(), set()
    # In file order: a reader's declaration gives its variable a table prefix
    # (variables are redeclared per table, so the latest declaration holds);
    # known({...}) lists the keys a table accepts; str("k", ...), integer(...),
    # ... read them; fail(c, node, "a.b.c", ...) names keys in full.
    token = re.compile(
        r'table_reader\s+(?P<decl>\w+)\s*\([^;]*?"(?P<prefix>[^"]*)"\s*\)\s*;'
        r'|(?P<kvar>\w+)\s*\.\s*known\s*\(\s*\{(?P<klist>[^}]*)\}\s*\)'
        r'|(?P<rvar>\w+)\s*\.\s*(?P<how>str|path|existing_file|integer|boolean|duration|strings|one_of|'
        r'listen_list|sub|array_of_tables|node)\s*(?:<[^>]*>)?\s*\(\s*"(?P<rkey>[^"]+)"'
        r'|fail\s*\(\s*\w+\s*,[^,]+,\s*"(?P<fkey>[a-z_]+(?:\.[a-z_]+)+)"', re.S)
    for path in sources:
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"//[^\n]*", "", text)  # comments name keys too, loosely
        prefix_of = {}

        def qualify(var, key):
            if var not in prefix_of:
                problems.append(f"{os.path.relpath(path, ROOT)}: reader '{var}' used before its declaration")
                return None
            p = prefix_of[var]
            return f"{p}.{key}" if p else key

        for m in token.finditer(text):
            if m.group("decl"):
                prefix_of[m.group("decl")] = m.group("prefix")
                if m.group("prefix"):
                    tables.add(m.group("prefix"))
            elif m.group("kvar"):
                for k in re.findall(r'"([^"]+)"', m.group("klist")):
                    q = qualify(m.group("kvar"), k)
                    if q:
                        (keys if "." in q else sections).add(q)
            elif m.group("rvar"):
                q = qualify(m.group("rvar"), m.group("rkey"))
                if q:
                    (keys if "." in q else sections).add(q)
            elif m.group("fkey"):
                keys.add(m.group("fkey"))
    tables |= sections
    keys -= tables  # "delivery.route" is a table of its own, not a key
    if len(keys) < 40 or len(tables) < 6:
        sys.exit(f"FAIL: only {len(keys)} keys and {len(tables)} tables found in {sources}: "
                 "has the loader changed how it reads keys? Update this script.")
    return keys, tables


def shipped_keys():
    """Keys of etc/ricochet.toml, the commented-out examples included."""
    path = os.path.join(ROOT, "etc", "ricochet.toml")
    keys, tables = set(), set()
    table = ""
    header = re.compile(r"^\s*#?\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$")
    assignment = re.compile(r"^\s*(#\s*)?([A-Za-z0-9_]+)\s*=\s*\S")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if m := header.match(line):
                table = m.group(1)
                tables.add(table)
            elif (m := assignment.match(line)) and table:
                keys.add(f"{table}.{m.group(2)}")
    if tomllib:  # the real keys, as TOML reads them (multi-line values and all)
        with open(path, "rb") as f:
            data = tomllib.load(f)

        def walk(prefix, value):
            if isinstance(value, dict):
                if prefix:
                    tables.add(prefix)
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            elif isinstance(value, list) and value and all(isinstance(e, dict) for e in value):
                tables.add(prefix)
                for e in value:
                    walk(prefix, e)
            else:
                keys.add(prefix)

        walk("", data)
    return keys, tables


def main():
    ref_path = os.path.join(ROOT, "docs", "configuration.md")
    ref = open(ref_path, encoding="utf-8").read()
    code_keys, code_tables = loader_keys()
    etc_keys, etc_tables = shipped_keys()

    # Each key has an entry of its own: a heading with its full name
    # ("### server.spool_dir"); each table a heading with its TOML header.
    headings = set(re.findall(r"^#{2,6}\s+`?([^`\n]+?)`?\s*$", ref, re.M))

    def mentioned(name):
        return name in headings

    def table_mentioned(name):
        return f"[{name}]" in headings or f"[[{name}]]" in headings

    for k in sorted(code_keys):
        if not mentioned(k):
            problems.append(f"docs/configuration.md: key `{k}` (read in config.cpp) has no entry (heading)")
    for t in sorted(code_tables):
        if not table_mentioned(t):
            problems.append(f"docs/configuration.md: table [{t}] (read in config.cpp) has no entry (heading)")
    for k in sorted(etc_keys - code_keys):
        if not mentioned(k):
            problems.append(f"docs/configuration.md: key `{k}` (in etc/ricochet.toml) has no entry (heading)")
        problems.append(f"etc/ricochet.toml: key `{k}` is not one the loader accepts")
    for t in sorted(etc_tables - code_tables):
        problems.append(f"etc/ricochet.toml: table [{t}] is not one the loader accepts")
    # The other way round: every key with a heading of its own is a real key.
    for m in re.finditer(r"^#{2,6}\s+`?(\[{0,2}[a-z_]+(?:\.[a-z_]+)*\]{0,2})`?\s*$", ref, re.M):
        name = m.group(1)
        bare = name.strip("[]")
        if name.startswith("["):
            if bare not in code_tables:
                problems.append(f"docs/configuration.md: heading {name}: no such table in the loader")
        elif "." in bare and bare not in code_keys:
            problems.append(f"docs/configuration.md: heading {name}: no such key in the loader")

    for p in problems:
        print("FAIL:", p)
    if not problems:
        print(f"ok: {len(code_keys)} keys in {len(code_tables)} tables, "
              f"{len(etc_keys)} keys in etc/ricochet.toml, all in docs/configuration.md")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
