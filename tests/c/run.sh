#!/usr/bin/env bash
# The C binding (bindings/c/crr.h) in a C app: linked statically (target/dist/libcrr.a, built
# by `make` with dist/crr.so) and registered with sqlite3_auto_extension, and the shared
# library loaded with sqlite3_load_extension; both against the system's SQLite (libsqlite3-dev,
# which .ci/run installs). The header must also compile and link as C++.
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=target/dist/libcrr.a
[ -f "$lib" ] || { echo "c: $lib missing: run make first" >&2; exit 1; }
command -v cc >/dev/null || { echo "c: no C compiler (cc)" >&2; exit 1; }
echo '#include <sqlite3.h>' | cc -E -x c - >/dev/null 2>&1 || { echo "c: sqlite3.h not found: install libsqlite3-dev" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# What libcrr.a needs besides: the host's SQLite, and Rust's standard library's system libraries.
link=("$lib" -lsqlite3 -lpthread -ldl -lm)
cc -O1 -Wall -Wextra -Werror -I bindings/c tests/c/app.c "${link[@]}" -o "$out/app"
if command -v c++ >/dev/null; then
  # Linked too: a declaration without C linkage would name a symbol the library lacks.
  printf '#include "crr.h"\nint main() { return sqlite3_auto_extension((void (*)(void))sqlite3_crr_init); }\n' > "$out/header.cpp"
  c++ -Wall -Werror -I bindings/c "$out/header.cpp" "${link[@]}" -o "$out/cpp"
  "$out/cpp"
  echo "c++: the header compiles and links as C++"
fi
"$out/app" static
"$out/app" load "$PWD/dist/crr"
