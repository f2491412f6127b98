#!/usr/bin/env bash
# man.sh — the manual pages, generated from the Markdown in docs/ with pandoc:
#   ricochetd(8)      from docs/ricochetd.md
#   ricochetctl(8)    from docs/ricochetctl.md
#   ricochet.toml(5)  from docs/configuration.md
# Usage: scripts/man.sh [OUTDIR]      (default build/man)
# Each Markdown file starts with one "# title" line; it is replaced by the
# page's NAME section, and the "## " sections become the page's sections
# (text before the first of them becomes DESCRIPTION).
# Links to the other docs become man page references (or docs/FILE.md).
# Needs pandoc (scripts/deps.sh installs it). Read them with man -l OUTDIR/ricochetd.8.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build/man}"
mkdir -p "$out"
command -v pandoc >/dev/null || { echo "man.sh: pandoc is not installed (apt-get install pandoc)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Links between the docs: to a man page reference where there is one.
cat > "$tmp/links.lua" <<'EOF'
local pages = {
  ["ricochetd.md"] = "ricochetd(8)",
  ["ricochetctl.md"] = "ricochetctl(8)",
  ["configuration.md"] = "ricochet.toml(5)",
}
-- Man pages' section headings are in capitals (NAME, SYNOPSIS, ...);
-- TOML table names ("[server]") stay as they are written.
function Header(el)
  if el.level == 1 and not pandoc.utils.stringify(el.content):match("^%[") then
    return pandoc.Header(1, pandoc.utils.stringify(el.content):upper(), el.attr)
  end
end
function Link(el)
  local file = el.target:match("^([%w%-_.]+%.md)")
  if not file or el.target:match("^%a+:") then return nil end
  local ref = pages[file] or ("docs/" .. file)
  local text = pandoc.utils.stringify(el.content)
  if text == file or text == ref then return pandoc.Str(ref) end
  local out = el.content
  table.insert(out, pandoc.Space())
  table.insert(out, pandoc.Str("(" .. ref .. ")"))
  return out
end
EOF

# page  section  markdown  one-line description
pages=(
  "ricochetd|8|ricochetd.md|the Ricochet outbound mail transfer agent daemon"
  "ricochetctl|8|ricochetctl.md|inspect and steer the Ricochet queue, recipients and bounce engine"
  "ricochet.toml|5|configuration.md|configuration file of the Ricochet mail transfer agent"
)
for p in "${pages[@]}"; do
  IFS='|' read -r name section md what <<<"$p"
  src="$root/docs/$md"
  # The date of the page: its source's last commit (reproducible), else today.
  date="$(git -C "$root" log -1 --format=%cs -- "docs/$md" 2>/dev/null || true)"
  [ -n "$date" ] || date="$(date -u +%Y-%m-%d)"
  {
    printf '## Name\n\n%s `\\-`{=man} %s\n\n' "$name" "$what"
    # Drop the "# title" line; text before the first "## " section becomes
    # DESCRIPTION (the NAME section must hold the NAME line only).
    awk 'NR == 1 && /^# / { next }
         !started && NF { started = 1; if ($0 !~ /^## /) print "## Description\n" }
         { print }' "$src"
  } > "$tmp/$name.md"
  upper="$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')"
  pandoc --from markdown-smart --to man --standalone \
    --shift-heading-level-by=-1 --lua-filter "$tmp/links.lua" \
    -M title="$upper" -M section="$section" -M date="$date" \
    -M header="Ricochet Manual" -M footer="Ricochet" -M hyphenate=false \
    -o "$out/$name.$section" "$tmp/$name.md"
  echo "$out/$name.$section"
done
