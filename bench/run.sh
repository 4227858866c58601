#!/usr/bin/env bash
# Measures beat against its peers and writes docs/PERFORMANCE.md.
#
#   bash bench/run.sh            # everything (about a quarter of an hour on 2 cores)
#   bash bench/run.sh --smoke    # tiny counts, one round: checks that every measurement runs
#   bash bench/run.sh --no-100k  # leaves out the bursts of 100,000 tasks
#
# Needs redis-server and redis-benchmark on the PATH. Starts a redis-server
# of its own on a free port (no persistence), which the measurements flush,
# and stops it at the end; it never touches another server.
set -euo pipefail
cd "$(dirname "$0")"

smoke=0
big=true
for arg in "$@"; do
  case $arg in
    --smoke) smoke=1 ;;
    --no-100k) big=false ;;
    *) echo "usage: bash bench/run.sh [--smoke] [--no-100k]" >&2; exit 2 ;;
  esac
done

for tool in redis-server redis-cli go; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is not installed (Debian: apt-get install redis-server redis-tools)" >&2; exit 1; }
done

# A free port: one nothing answers on.
port=""
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "bench/run.sh: no free port found" >&2; exit 1; }

work=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
cleanup() {
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$port" ping >/dev/null || { echo "bench/run.sh: redis-server did not come up on port $port" >&2; cat "$work/redis.log" >&2; exit 1; }
echo "bench/run.sh: redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$port (pid $redis_pid)" >&2

go build -o "$work/beatbench" .

if [ "$smoke" = 1 ]; then
  out="$work/PERFORMANCE.md"
  "$work/beatbench" -smoke -redis "127.0.0.1:$port" -out "$out" -work "$work" -command "bash bench/run.sh --smoke"
  echo "bench/run.sh: smoke run passed; its report (not kept):" >&2
  cat "$out"
  exit 0
fi

mkdir -p out
command="bash bench/run.sh"
[ "$big" = true ] || command="$command --no-100k"
"$work/beatbench" -redis "127.0.0.1:$port" -out ../docs/PERFORMANCE.md -work out -burst-100k="$big" -command "$command"
echo "bench/run.sh: wrote docs/PERFORMANCE.md; profiles in bench/out/" >&2
