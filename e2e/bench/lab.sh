# The benchmark's lab, sourced by overhead.sh:
# nginx in one network namespace, wrk in another, and the agent started
# and stopped between runs. The caller sets NAME (for messages), PREFIX
# (two letters for the namespaces and links), NET (the /24 both ends live
# in, e.g. 10.244.200) and METRICS; this file reads AGENT, DURATION, CONNS,
# THREADS, EXTRA_ARGS.

id=$PREFIX$RANDOM # veth names: 15 characters at most
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
ip -n "$srv" addr add "$NET.1/24" dev "${id}a"
ip -n "$cli" addr add "$NET.2/24" dev "${id}b"
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
		listen $NET.1:8080;
		location / { return 200 "ok\n"; }
		location /big/ { alias $tmp/www/; }
	}
}
CONF
mkdir -p "$tmp/www" && head -c 16384 /dev/zero | tr '\0' x >"$tmp/www/16k"
ip netns exec "$srv" nginx -c "$tmp/nginx.conf" &
for _ in $(seq 50); do ip netns exec "$cli" curl -sf "http://$NET.1:8080/" >/dev/null && break; sleep 0.1; done

# measure runs wrk once ($mode keepalive, close, or realistic: keep-alive
# with a 16 KiB response) and prints requests/s, p99 in µs and the
# request count. wrk prints "N requests in",
# "Requests/sec: N" and, with --latency, "99% X{us,ms,s}".
measure() {
	local out hdr=() path=/
	[ "$mode" = close ] && hdr=(-H "Connection: close")
	[ "$mode" = realistic ] && path=/big/16k
	out=$(ip netns exec "$cli" wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" --latency "${hdr[@]}" "http://$NET.1:8080$path")
	awk '/requests in/ {n=$1} /^Requests\/sec:/ {r=$2}
		$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); p=v} else if (v ~ /ms$/) {sub(/ms$/,"",v); p=v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); p=v*1000000}}
		END {print r, p, n}' <<<"$out"
}

start_agent() { # extra agent arguments
	# shellcheck disable=SC2086
	"$AGENT" --kubernetes=off --metrics-addr "$METRICS" --log-level warn $EXTRA_ARGS "$@" >"$tmp/agent.log" 2>&1 &
	agent_pid=$!
	for _ in $(seq 300); do
		curl -sf "http://$METRICS/readyz" >/dev/null && return 0 # probes loaded, not merely serving
		kill -0 "$agent_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "$NAME: agent did not start:"; cat "$tmp/agent.log"; exit 1
}

stop_agent() { kill "$agent_pid"; wait "$agent_pid" || true; agent_pid=""; }

# Kernel time (kernel.bpf_stats_enabled) of the running agent's capture
# programs (syscall hooks enter_*/exit_*, socket tracepoints http_*, the
# cgroup root's root_* with the packet programs it tail-calls), summed:
# its own, found by the program ids of its file descriptors, since other
# agents on the host load programs of the same names.
agent_bpf_ns() {
	local ids
	ids=$(grep -h '^prog_id:' /proc/"$agent_pid"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -u | paste -sd' ' -)
	bpftool prog show 2>/dev/null | awk -v ids="$ids" 'BEGIN {n = split(ids, a, " "); for (i = 1; i <= n; i++) mine[a[i] ":"] = 1}
		$1 in mine && / name (enter|exit|http|root)_/ {for (i = 1; i < NF; i++) if ($i == "run_time_ns") s += $(i+1)} END {print s+0}'
}

# CPU time the running agent has used, in µs (user and system).
agent_cpu_us() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($14 + $15) * 1e6 / hz}' /proc/"$agent_pid"/stat; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }

# kernel_ns_per_request ARGS: one more wrk run, the agent started with ARGS
# and kernel.bpf_stats_enabled on for this run only (the statistics cost
# time on every program run, so the throughput runs go without them);
# prints the agent's capture programs' kernel time per request.
kernel_ns_per_request() {
	local before after n
	start_agent "$@"
	sysctl -qw kernel.bpf_stats_enabled=1
	before=$(agent_bpf_ns)
	read -r _ _ n < <(measure)
	after=$(agent_bpf_ns)
	sysctl -qw kernel.bpf_stats_enabled=0
	stop_agent
	awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN {printf "%.0f", (a-b)/n}'
}
