#!/usr/bin/env bash
# The system packages `make test` needs beyond Python, the one list `make test` and `.ci/run`
# share (`make system-packages` runs this):
#   chromium, chromium-driver  the browser tests (Playwright drives Debian's Chromium)
#   postgresql                 the production dagster.yaml test (a throwaway server, initdb)
#   curl                       the demo test runs the request the demo prints
#   wrk                        bench_serving / bench_collector (HTTP load), not the tests
# Present: nothing to do. Missing: installed with apt-get when this user may (root, or sudo
# without a password); otherwise it stops with the one command to run.
set -euo pipefail

PACKAGES=(chromium chromium-driver postgresql curl wrk)

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: ${PACKAGES[*]} present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "Missing system packages: ${missing[*]}. Install them, then run make test again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing system packages: ${missing[*]}, and no apt-get here to install them." >&2
    echo "Install their equivalents with your package manager, then run make test again." >&2
    exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
