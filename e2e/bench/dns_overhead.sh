#!/usr/bin/env bash
# What DNS capture costs a busy server that does no DNS: wrk against nginx
# in a network namespace with no agent, the agent with --dns=off and with
# --dns=on (both --http=off), interleaved so drift on a shared machine hits
# every setup alike. Every read and write on the host passes the DNS
# probe's first check, so this is its worst case. Prints per-run figures,
# medians, ratios and the DNS programs' kernel time per request.
#
# Env: AGENT (bin/strata-agent), RUNS (5), DURATION (10s), CONNS (32),
#      THREADS (2), MODES ("keepalive close").
set -euo pipefail

AGENT=${AGENT:-bin/strata-agent}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
MODES=${MODES:-keepalive close}
METRICS=127.0.0.1:19811

[ "$(id -u)" = 0 ] || { echo "dns-overhead: run as root (network namespaces, eBPF)"; exit 1; }
for tool in wrk nginx ip curl bpftool; do
	command -v $tool >/dev/null || { echo "dns-overhead: $tool not found (make deps installs it)"; exit 1; }
done
[ -x "$AGENT" ] || { echo "dns-overhead: $AGENT not built (make build)"; exit 1; }
if pgrep -x strata-agent >/dev/null; then
	echo "dns-overhead: another strata-agent runs on this host; its probes would weigh on every setup"; exit 1
fi

id=sd$RANDOM
srv=$id-srv cli=$id-cli
tmp=$(mktemp -d)
agent_pid=""
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
	[ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
	ip netns del "$srv" 2>/dev/null || true
	ip netns del "$cli" 2>/dev/null || true
	rm -rf "$tmp"
	sysctl -qw kernel.bpf_stats_enabled=0
}
trap cleanup EXIT

ip netns add "$srv"
ip netns add "$cli"
ip link add "${id}a" netns "$srv" type veth peer name "${id}b" netns "$cli"
ip -n "$srv" addr add 10.244.201.1/24 dev "${id}a"
ip -n "$cli" addr add 10.244.201.2/24 dev "${id}b"
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "${id}a" up
ip -n "$cli" link set "${id}b" up
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
		listen 10.244.201.1:8080;
		location / { return 200 "ok\n"; }
	}
}
CONF
ip netns exec "$srv" nginx -c "$tmp/nginx.conf" &
for _ in $(seq 50); do ip netns exec "$cli" curl -sf http://10.244.201.1:8080/ >/dev/null && break; sleep 0.1; done

measure() {
	local out hdr=()
	[ "$mode" = close ] && hdr=(-H "Connection: close")
	out=$(ip netns exec "$cli" wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" --latency "${hdr[@]}" http://10.244.201.1:8080/)
	awk '/requests in/ {n=$1} /^Requests\/sec:/ {r=$2}
		$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); p=v} else if (v ~ /ms$/) {sub(/ms$/,"",v); p=v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); p=v*1000000}}
		END {print r, p, n}' <<<"$out"
}

start_agent() {
	"$AGENT" --kubernetes=off --metrics-addr "$METRICS" --log-level warn --http=off "$@" >"$tmp/agent.log" 2>&1 &
	agent_pid=$!
	for _ in $(seq 300); do
		curl -sf "http://$METRICS/metrics" >/dev/null && return 0
		kill -0 "$agent_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "dns-overhead: agent did not start:"; cat "$tmp/agent.log"; exit 1
}

stop_agent() { kill "$agent_pid"; wait "$agent_pid" || true; agent_pid=""; }

# Kernel time of the agent's DNS programs (with --http=off its only syscall
# hooks); its own, found by the program ids of its file descriptors, since
# other agents on the host load programs of the same names.
dns_bpf_ns() {
	local ids
	ids=$(grep -h '^prog_id:' /proc/"$agent_pid"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -u | paste -sd' ' -)
	bpftool prog show 2>/dev/null | awk -v ids="$ids" 'BEGIN {n = split(ids, a, " "); for (i = 1; i <= n; i++) mine[a[i] ":"] = 1}
		$1 in mine && / name (enter|exit)_/ {for (i = 1; i < NF; i++) if ($i == "run_time_ns") s += $(i+1)} END {print s+0}'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }

sysctl -qw kernel.bpf_stats_enabled=1

for mode in $MODES; do
	echo "== $mode: wrk -t $THREADS -c $CONNS -d $DURATION, $RUNS interleaved runs"
	printf "%-4s %12s %9s %12s %9s %12s %9s %10s\n" run "none req/s" "p99 us" "dns=off" "p99 us" "dns=on" "p99 us" "ns/req"
	: >"$tmp/none"; : >"$tmp/off"; : >"$tmp/on"; : >"$tmp/nsreq"
	for i in $(seq "$RUNS"); do
		read -r none_rps none_p99 _ < <(measure)
		start_agent --dns=off
		read -r off_rps off_p99 _ < <(measure)
		stop_agent
		start_agent --dns=on
		before=$(dns_bpf_ns)
		read -r on_rps on_p99 on_n < <(measure)
		after=$(dns_bpf_ns)
		stop_agent
		nsreq=$(awk -v a="$after" -v b="$before" -v n="$on_n" 'BEGIN {printf "%.0f", (a-b)/n}')
		echo "$none_rps $none_p99" >>"$tmp/none"; echo "$off_rps $off_p99" >>"$tmp/off"; echo "$on_rps $on_p99" >>"$tmp/on"; echo "$nsreq" >>"$tmp/nsreq"
		printf "%-4s %12s %9s %12s %9s %12s %9s %10s\n" "$i" "$none_rps" "$none_p99" "$off_rps" "$off_p99" "$on_rps" "$on_p99" "$nsreq"
	done
	for c in none off on; do
		eval "${c}_rps=\$(cut -d' ' -f1 \$tmp/$c | median)"
		eval "${c}_p99=\$(cut -d' ' -f2 \$tmp/$c | median)"
	done
	echo "medians: none $none_rps req/s p99 ${none_p99}us | dns=off $off_rps req/s p99 ${off_p99}us | dns=on $on_rps req/s p99 ${on_p99}us"
	echo "throughput ratio dns=on/dns=off: $(ratio "$on_rps" "$off_rps")   dns=off/none: $(ratio "$off_rps" "$none_rps")   dns=on/none: $(ratio "$on_rps" "$none_rps")"
	echo "p99 latency ratio dns=on/dns=off: $(ratio "$on_p99" "$off_p99")"
	echo "DNS probe in-kernel cost: $(median <"$tmp/nsreq") ns per request (both ends, no DNS in the traffic)"
	echo
done
