# Shell helpers shared by the bench scripts (sourced, not run).

# Waits up to 10 s for something to listen on 127.0.0.1:PORT; exits the script otherwise.
wait_port() {  # port
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nothing listening on port $1" >&2
  exit 1
}

# The ternd configuration the throughput benches use: one listener, everything relayed
# through a "*" route, limits out of the way of the load.
bench_config() {  # listen_port queue_dir relay_port
  cat <<YAML
hostname: tern.bench.example
listen: [{address: "127.0.0.1:$1"}]
queue_dir: $2
queue_min_free: 0
log_level: info
limits: {max_connections: 20000, max_connections_per_client: 20000}
routes: {"*": "127.0.0.1:$3"}
delivery: {max_per_destination: 20}
YAML
}
