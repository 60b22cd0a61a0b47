#!/usr/bin/env bash
# An unused-dependency check: every dependency a package's Cargo.toml declares must be named in
# its code (as `name::` or `use name`, dashes read as underscores). A dependency that is only
# pulled in for a feature of another crate would say so here, in the allow-list with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
check() {
  local manifest="$1"; shift
  local dir; dir="$(dirname "$manifest")"
  local section="" name
  while IFS= read -r line; do
    case "$line" in
      "["*"]") section="$line"; continue ;;
    esac
    case "$section" in
      "[dependencies]"|"[dev-dependencies]") ;;
      *) continue ;;
    esac
    name="${line%%=*}"; name="${name// /}"
    [[ -z "$name" || "$name" == \#* ]] && continue
    local ident="${name//-/_}"
    # the package itself (the test build's dev-dependency with its test hooks)
    [[ "$ident" == "$(basename "$dir" | tr - _)" || ("$dir" == "." && "$ident" == "palaute") ]] && continue
    if ! grep -rqE "(^|[^A-Za-z0-9_])${ident}::|use ${ident}( |;|::)|extern crate ${ident}" "$@"; then
      echo "unused dependency in $manifest: $name" >&2
      status=1
    fi
  done < "$manifest"
}
check ./Cargo.toml src tests
for m in crates/*/Cargo.toml; do
  [ -f "$m" ] && check "$m" "$(dirname "$m")/src"
done
exit $status
