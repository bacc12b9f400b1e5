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

# wrk prints "N requests in", "Requests/sec: N" and, with --latency, "99% X{us,ms,s}".
measure() {
	local out hdr=()
	[ "$mode" = close ] && hdr=(-H "Connection: close")
	out=$(ip netns exec "$cli" wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" --latency "${hdr[@]}" http://10.244.200.1:8080/)
	awk '/requests in/ {n=$1} /^Requests\/sec:/ {r=$2}
		$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); p=v} else if (v ~ /ms$/) {sub(/ms$/,"",v); p=v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); p=v*1000000}}
		END {print r, p, n}' <<<"$out"
}

start_agent() { # extra agent arguments
	# shellcheck disable=SC2086
	"$AGENT" --kubernetes=off --metrics-addr "$METRICS" --log-level warn $EXTRA_ARGS "$@" >"$tmp/agent.log" 2>&1 &
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

# Kernel time of the HTTP programs (kernel.bpf_stats_enabled), summed.
http_bpf_ns() {
	bpftool prog show 2>/dev/null | awk '/ name (enter|exit)_(write|sendto|writev|sendmsg|read|recvfrom|readv|recvmsg) / {
		for (i = 1; i < NF; i++) if ($i == "run_time_ns") s += $(i+1) } END {print s+0}'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }

sysctl -qw kernel.bpf_stats_enabled=1
trap 'sysctl -qw kernel.bpf_stats_enabled=0; cleanup' EXIT

# Three setups, interleaved: no agent; the agent with TCP probes only
# (--http=off); the agent with HTTP capture too. DNS capture is off in both
# (its programs hook the same calls under the same names):
# e2e/bench/dns_overhead.sh measures it.
for mode in $MODES; do
	echo "== $mode: wrk -t $THREADS -c $CONNS -d $DURATION, $RUNS interleaved runs"
	printf "%-4s %12s %9s %12s %9s %12s %9s %10s\n" run "off req/s" "p99 us" "tcp req/s" "p99 us" "http req/s" "p99 us" "ns/req"
	: >"$tmp/off"; : >"$tmp/tcp"; : >"$tmp/http"; : >"$tmp/nsreq"
	for i in $(seq "$RUNS"); do
		read -r off_rps off_p99 _ < <(measure)
		start_agent --http=off --dns=off
		read -r tcp_rps tcp_p99 _ < <(measure)
		stop_agent
		start_agent --http=on --dns=off
		before=$(http_bpf_ns)
		read -r http_rps http_p99 http_n < <(measure)
		after=$(http_bpf_ns)
		lost=$(curl -sf "http://$METRICS/metrics" | awk '/^strata_agent_events_lost_total/ {s+=$2} END {print s+0}')
		stop_agent
		nsreq=$(awk -v a="$after" -v b="$before" -v n="$http_n" 'BEGIN {printf "%.0f", (a-b)/n}')
		echo "$off_rps $off_p99" >>"$tmp/off"; echo "$tcp_rps $tcp_p99" >>"$tmp/tcp"; echo "$http_rps $http_p99" >>"$tmp/http"; echo "$nsreq" >>"$tmp/nsreq"
		printf "%-4s %12s %9s %12s %9s %12s %9s %10s   (events lost: %s)\n" "$i" "$off_rps" "$off_p99" "$tcp_rps" "$tcp_p99" "$http_rps" "$http_p99" "$nsreq" "$lost"
	done
	for c in off tcp http; do
		eval "${c}_rps=\$(cut -d' ' -f1 \$tmp/$c | median)"
		eval "${c}_p99=\$(cut -d' ' -f2 \$tmp/$c | median)"
	done
	echo "medians: off $off_rps req/s p99 ${off_p99}us | tcp $tcp_rps req/s p99 ${tcp_p99}us | http $http_rps req/s p99 ${http_p99}us"
	echo "throughput ratio tcp/off: $(ratio "$tcp_rps" "$off_rps")   http/off: $(ratio "$http_rps" "$off_rps")   http/tcp: $(ratio "$http_rps" "$tcp_rps")"
	echo "p99 latency ratio tcp/off: $(ratio "$tcp_p99" "$off_p99")   http/off: $(ratio "$http_p99" "$off_p99")"
	echo "HTTP capture in-kernel cost: $(median <"$tmp/nsreq") ns per request (all syscall hooks, both ends)"
	echo
done
