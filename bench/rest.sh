#!/usr/bin/env bash
# REST throughput and p99 latency with 64 keep-alive clients (wrk), for
# GET /info/ and a poll of a missing file, against the floor: nginx answering
# a fixed JSON body of the same size from memory (no routing, no JSON work).
#   bench/rest.sh [ROUNDS=3] [SECONDS=10]
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-3} SECS=${2:-10}
build_release
OUT=$BENCH_DIR/rest-results.txt
: >"$OUT"

start_nginx() { # body
  local dir=$BENCH_DIR/nginx
  rm -rf "$dir" && mkdir -p "$dir"
  NGINX_PORT=$((20000 + RANDOM % 20000))
  cat >"$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '$1'; }
  }
}
CONF
  nginx -c "$dir/nginx.conf" -p "$dir"
  sleep 0.3
}
stop_nginx() { kill "$(cat "$BENCH_DIR/nginx/nginx.pid")"; sleep 0.3; }


for r in $(seq "$ROUNDS"); do
  start_tangod rest "POOL_SIZE = 1"
  info=$(curl -s "http://127.0.0.1:$PORT/info/test/")
  missing=$(curl -s "http://127.0.0.1:$PORT/poll/test/lab/missing/")
  run_wrk "round $r tangod info" "http://127.0.0.1:$PORT/info/test/"
  run_wrk "round $r tangod poll-missing" "http://127.0.0.1:$PORT/poll/test/lab/missing/"
  stop_tangod
  start_nginx "$info"
  run_wrk "round $r nginx info" "http://127.0.0.1:$NGINX_PORT/info/test/"
  stop_nginx
  start_nginx "$missing"
  run_wrk "round $r nginx poll-missing" "http://127.0.0.1:$NGINX_PORT/poll/test/lab/missing/"
  stop_nginx
done
echo "results in $OUT"
