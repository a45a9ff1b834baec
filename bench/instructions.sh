#!/usr/bin/env bash
# Instructions per request of one route of the service, by valgrind's callgrind:
# the same count for the same code however busy the machine is (CPU time is not, on 2 shared
# cores). Two runs of `bench.route_cpu --only ROUTE`, with N1 and N2 requests per app; the
# difference of their totals over N2 - N1 requests cancels start-up, seeding and warming.
#
#   bash bench/instructions.sh "GET owned_apps/{app_id}" [N1=100] [N2=400]
#
# Run it on two commits and compare. Needs the bench's database settings (APPS_API_BENCH_*), like
# route_cpu; the service's requests are the same as route_cpu's.
set -euo pipefail
cd "$(dirname "$0")/.."
route=$1 n1=${2:-100} n2=${3:-400}
total() {
  local out
  out=$(mktemp -d)
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" --trace-children=no \
    .venv/bin/python -m bench.route_cpu --only "$route" --service-only --requests "$1" >/dev/null 2>"$out/log"
  grep -h "^summary:\|^totals:" "$out"/cg.* | awk '{s += $2} END {print s}'
  rm -rf "$out"
}
first=$(total "$n1")
second=$(total "$n2")
echo "$route: $(( (second - first) / (n2 - n1) )) instructions per request"
