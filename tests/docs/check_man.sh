#!/usr/bin/env bash
# check_man.sh — ctest docs.man: scripts/man.sh builds the man pages from
# docs/ into a temporary directory, and each renders without a warning.
# Usage: tests/docs/check_man.sh [SOURCE_DIR]. Exit 77 (skipped) without pandoc or groff.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
for tool in pandoc groff; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77; }
done

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$root/scripts/man.sh" "$out" >/dev/null

fail=0
bad() { echo "FAIL: $*"; fail=1; page_fail=1; }
# page file, .TH title, section
for spec in "ricochetd.8 RICOCHETD 8" "ricochetctl.8 RICOCHETCTL 8" "ricochet.toml.5 RICOCHET.TOML 5"; do
  read -r file title section <<<"$spec"
  page_fail=0
  page="$out/$file"
  [ -s "$page" ] || { bad "$file was not written"; continue; }
  grep -q "^\.TH \"$title\" \"$section\"" "$page" || bad "$file: no .TH \"$title\" \"$section\" line"
  # NAME first, holding "name \- description" (for whatis/apropos); then SYNOPSIS or DESCRIPTION.
  sections="$(grep '^\.SH ' "$page" | sed 's/^\.SH //; s/"//g')"
  [ "$(sed -n 1p <<<"$sections")" = NAME ] || bad "$file: the first section is not NAME"
  grep -qx 'SYNOPSIS\|DESCRIPTION' <<<"$sections" || bad "$file: no SYNOPSIS or DESCRIPTION section"
  name_line="$(sed -n '/^\.SH NAME/,/^\.SH /{/^\.SH/d;/^\.PP/d;p}' "$page" | tr '\n' ' ')"
  grep -q "^${file%.*} \\\\- [^ ]" <<<"$name_line" || bad "$file: NAME is not '${file%.*} \\- ...': $name_line"
  # groff: every warning on (-ww), tables through tbl (-t), no output (-z).
  if warnings="$(groff -t -man -ww -z "$page" 2>&1)" && [ -z "$warnings" ]; then :; else
    bad "$file: groff warns:"; echo "$warnings" | head -20
  fi
  # man -l: what a reader sees, rendered at 80 columns, with man's own warnings.
  if command -v man >/dev/null; then
    text="$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>"$out/err" || true)"
    [ -s "$out/err" ] && { bad "$file: man -l warns:"; head -20 "$out/err"; }
    grep -q "^NAME" <<<"$text" || bad "$file: man -l shows no NAME section"
    # Markdown that survived as such (a link or emphasis pandoc did not read).
    if grep -nE '\]\(|\*\*' <<<"$text" | head -5 | grep .; then bad "$file: raw Markdown in the page"; fi
  fi
  [ "$page_fail" = 1 ] || echo "ok: $file"
done
exit $fail
