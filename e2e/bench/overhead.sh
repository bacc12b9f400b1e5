#!/usr/bin/env bash
# Overhead of the agent on a busy HTTP server: wrk against nginx in a
# network namespace, agent off and on, interleaved so drift on a shared
# machine hits both sides alike. Prints per-run figures, medians and ratios.
#
# Two workloads: keep-alive (requests on long-lived connections: the
# sweep's cost) and close (a new connection per request: the lifecycle
# probes' worst case).
#
# Env: AGENT (bin/strata-agent), RUNS (5), DURATION (10s), CONNS (32),
#      THREADS (2), MODES ("keepalive close"), EXTRA_ARGS (appended to the
#      agent's command line).
set -euo pipefail

AGENT=${AGENT:-bin/strata-agent}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
EXTRA_ARGS=${EXTRA_ARGS:-}
MODES=${MODES:-keepalive close}
METRICS=127.0.0.1:19810

[ "$(id -u)" = 0 ] || { echo "bench-overhead: run as root (network namespaces, eBPF)"; exit 1; }
for tool in wrk nginx ip curl; do
	command -v $tool >/dev/null || { echo "bench-overhead: $tool not found (make deps installs it)"; exit 1; }
done
[ -x "$AGENT" ] || { echo "bench-overhead: $AGENT not built (make build)"; exit 1; }

id=sb$RANDOM
srv=$id-srv cli=$id-cli
tmp=$(mktemp -d)
agent_pid=""
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
	[ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
	ip netns del "$srv" 2>/dev/null || true
	ip netns del "$cli" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$srv"
ip netns add "$cli"
ip link add "${id}a" netns "$srv" type veth peer name "${id}b" netns "$cli"
ip -n "$srv" addr add 10.244.200.1/24 dev "${id}a"
ip -n "$cli" addr add 10.244.200.2/24 dev "${id}b"
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "${id}a" up
ip -n "$cli" link set "${id}b" up
# A new connection per request at tens of thousands a second would run the
# client out of ports within a run; widen the range and reuse TIME_WAIT.
ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1

cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp;
	uwsgi_temp_path $tmp; scgi_temp_path $tmp;
	server {
		listen 10.244.200.1:8080;
		location / { return 200 "ok\n"; }
	}
}
CONF
ip netns exec "$srv" nginx -c "$tmp/nginx.conf" &
for _ in $(seq 50); do ip netns exec "$cli" curl -sf http://10.244.200.1:8080/ >/dev/null && break; sleep 0.1; done

# wrk prints "Requests/sec: N" and, with --latency, "99% X{us,ms,s}".
measure() {
	local out rps p99
	local hdr=()
	[ "$mode" = close ] && hdr=(-H "Connection: close")
	out=$(ip netns exec "$cli" wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" --latency "${hdr[@]}" http://10.244.200.1:8080/)
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); print v} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000000}}' <<<"$out")
	echo "$rps $p99"
}

start_agent() {
	# shellcheck disable=SC2086
	"$AGENT" --kubernetes=off --metrics-addr "$METRICS" --log-level warn $EXTRA_ARGS >"$tmp/agent.log" 2>&1 &
	agent_pid=$!
	for _ in $(seq 300); do
		curl -sf "http://$METRICS/metrics" >/dev/null && return 0
		kill -0 "$agent_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench-overhead: agent did not start:"; cat "$tmp/agent.log"; exit 1
}

stop_agent() {
	kill "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for mode in $MODES; do
echo "== $mode: wrk -t $THREADS -c $CONNS -d $DURATION, $RUNS interleaved runs"
printf "%-4s %14s %12s %14s %12s\n" run "off req/s" "off p99 us" "on req/s" "on p99 us"
	: >"$tmp/off"; : >"$tmp/on"
	for i in $(seq "$RUNS"); do
		read -r off_rps off_p99 < <(measure)
		start_agent
		read -r on_rps on_p99 < <(measure)
		lost=$(curl -sf "http://$METRICS/metrics" | awk '/^strata_agent_events_lost_total/ {s+=$2} END {print s+0}')
		stop_agent
		echo "$off_rps $off_p99" >>"$tmp/off"
		echo "$on_rps $on_p99" >>"$tmp/on"
		printf "%-4s %14s %12s %14s %12s   (events lost: %s)\n" "$i" "$off_rps" "$off_p99" "$on_rps" "$on_p99" "$lost"
	done

	off_rps=$(cut -d' ' -f1 "$tmp/off" | median); on_rps=$(cut -d' ' -f1 "$tmp/on" | median)
	off_p99=$(cut -d' ' -f2 "$tmp/off" | median); on_p99=$(cut -d' ' -f2 "$tmp/on" | median)
	echo
	echo "median throughput: off $off_rps req/s, on $on_rps req/s"
	echo "median p99 latency: off $off_p99 us, on $on_p99 us"
	awk -v a="$on_rps" -v b="$off_rps" 'BEGIN {printf "throughput ratio (on/off): %.3f\n", a/b}'
	awk -v a="$on_p99" -v b="$off_p99" 'BEGIN {printf "p99 latency ratio (on/off): %.3f\n", a/b}'
echo
done
