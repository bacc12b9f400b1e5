#!/usr/bin/env bash
# Connection storms: STORMS storms at once, each in its own pair of network
# namespaces joined by a veth, each a tcpclient making CONNS connections
# (PARALLEL at a time, one 100-byte request and reply, closed with a RST)
# to a tcpserver on a port of its own. Then every storm's connections as the
# agent counted them at both ends, against what the clients made, and every
# record the agent lost, by probe and stage: exact or not, nothing in between.
#
# Env: AGENT (bin/strata-agent), STORMS (8), CONNS (20000 per storm),
#      PARALLEL (8 per storm), AGENT_ARGS (--http=on --dns=on),
#      PEER_NICE (0: the storms' clients and servers run at this nice value;
#      19 gives the agent the CPU a pod's request would under Kubernetes,
#      where CPU is shared by cgroup rather than by thread),
#      HTTP (1: each connection one HTTP GET and its response, which the
#      agent's HTTP capture counts too), SWEEP (1s: the agent's --sweep-interval), LATE (1: the namespaces are
#      made after the agent started, as new pods are),
#      PROFILE (a file: perf record of the agent during the storms, its
#      report beside it), OUT (a file: the figures, one "key value" a line).
set -euo pipefail

AGENT=${AGENT:-bin/strata-agent}
STORMS=${STORMS:-8}
CONNS=${CONNS:-20000}
PARALLEL=${PARALLEL:-8}
AGENT_ARGS=${AGENT_ARGS:---http=on --dns=on}
PROFILE=${PROFILE:-}
SWEEP=${SWEEP:-1s}
LATE=${LATE:-0}
HTTP=${HTTP:-0}
PEER_NICE=${PEER_NICE:-0}
peer_args=()
[ "$HTTP" = 1 ] && peer_args=(-http)
OUT=${OUT:-}
METRICS=127.0.0.1:19811
BASE_PORT=9100

[ "$(id -u)" = 0 ] || { echo "bench-storm: run as root (network namespaces, eBPF)"; exit 1; }
for tool in ip curl; do
	command -v $tool >/dev/null || { echo "bench-storm: $tool not found (make deps installs it)"; exit 1; }
done
[ -x "$AGENT" ] || { echo "bench-storm: $AGENT not built (make build)"; exit 1; }
[ "$STORMS" -le 40 ] || { echo "bench-storm: at most 40 storms (one /24 each)"; exit 1; }
if pgrep -x strata-agent >/dev/null; then
	echo "bench-storm: another strata-agent runs on this host; it would count these storms' traffic too"; exit 1
fi

id=st$RANDOM # veth names: 15 characters at most
tmp=$(mktemp -d)
agent_pid="" perf_pid=""
cleanup() {
	[ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null || true
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
	pairs_down "$STORMS"
	rm -rf "$tmp"
}
# shellcheck source=pairs.sh
source "$(dirname "$0")/pairs.sh"
trap cleanup EXIT

go build -o "$tmp/" ./e2e/cmd/tcpclient ./e2e/cmd/tcpserver

# make_lab: every storm's pair of namespaces and its server.
make_lab() {
	pairs_up "$STORMS" 209
	for i in $(seq "$STORMS"); do
		ip netns exec "$id-$i-srv" nice -n "$PEER_NICE" "$tmp/tcpserver" -listen "10.244.$((209 + i)).1:$((BASE_PORT + i))" "${peer_args[@]}" >"$tmp/srv$i.log" 2>&1 &
		disown
	done
	for i in $(seq "$STORMS"); do
		for _ in $(seq 100); do
			[ -n "$(ip netns exec "$id-$i-srv" ss -Hltn "sport = :$((BASE_PORT + i))")" ] && break
			sleep 0.05
		done
	done
}

# By default the lab comes first, so the agent's start-up already knows it;
# LATE=1 makes it once the agent runs, as new pods come.
[ "$LATE" = 1 ] || make_lab
# shellcheck disable=SC2086
"$AGENT" --kubernetes=off --metrics-addr "$METRICS" --log-level warn --sweep-interval "$SWEEP" $AGENT_ARGS >"$tmp/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 300); do
	curl -sf "http://$METRICS/readyz" >/dev/null && break
	kill -0 "$agent_pid" 2>/dev/null || { echo "bench-storm: agent exited:"; cat "$tmp/agent.log"; exit 1; }
	sleep 0.1
done
curl -sf "http://$METRICS/readyz" >/dev/null || { echo "bench-storm: agent not ready:"; cat "$tmp/agent.log"; exit 1; }

if [ "$LATE" = 1 ]; then make_lab; fi

cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' /proc/"$agent_pid"/stat; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' /proc/"$agent_pid"/status; }
cpu0=$(cpu_s)

if [ -n "$PROFILE" ]; then
	perf record -F 499 -g -p "$agent_pid" -o "$PROFILE" >/dev/null 2>&1 &
	perf_pid=$!
	sleep 0.5
fi

echo "== $STORMS storms at once, $CONNS connections each, $PARALLEL at a time per storm (nice $PEER_NICE); agent: $AGENT_ARGS"
start=$(date +%s.%N)
clients=()
for i in $(seq "$STORMS"); do
	ip netns exec "$id-$i-cli" nice -n "$PEER_NICE" "$tmp/tcpclient" -connect "10.244.$((209 + i)).1:$((BASE_PORT + i))" \
		-count "$CONNS" -parallel "$PARALLEL" -reset -allow-fail "${peer_args[@]}" >"$tmp/cli$i.json" 2>"$tmp/cli$i.err" &
	clients+=($!)
done
# The slowest scrape meanwhile: how long a Prometheus would wait.
slowest=0
running() { for p in "${clients[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
	s=$(curl -so /dev/null -w '%{time_total}' "http://$METRICS/metrics" || echo 0)
	slowest=$(awk -v a="$s" -v b="$slowest" 'BEGIN {print (a > b) ? a : b}')
	sleep 0.5
done
for p in "${clients[@]}"; do wait "$p" || true; done
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=""; fi

# Made: what the clients say they completed (ok) and attempted.
made=0 failed=0
for i in $(seq "$STORMS"); do
	ok=$(grep -o '"ok":[0-9]*' "$tmp/cli$i.json" | cut -d: -f2)
	f=$(grep -o '"failed":[0-9]*' "$tmp/cli$i.json" | cut -d: -f2)
	echo "$ok" >"$tmp/ok$i"
	made=$((made + ok)) failed=$((failed + f))
done

# counted PORT REPORTER: the agent's successful connections of one storm.
scrape() { curl -sf "http://$METRICS/metrics" >"$tmp/metrics"; }
counted() {
	awk -v port="$1" -v rep="$2" '/^strata_tcp_connections_total\{/ && index($0, "destination_port=\"" port "\"") && index($0, "reporter=\"" rep "\"") && index($0, "result=\"success\"") {s += $NF} END {printf "%d", s}' "$tmp/metrics"
}
# Wait for the last records and a sweep or two; then nothing may move.
settle=0 prev=""
for _ in $(seq 30); do
	sleep 1
	scrape
	cur=$(for i in $(seq "$STORMS"); do counted $((BASE_PORT + i)) client; counted $((BASE_PORT + i)) server; done | paste -sd' ')
	if [ "$cur" = "$prev" ]; then settle=$((settle + 1)); [ $settle -ge 3 ] && break; else settle=0; fi
	prev=$cur
done

exact=1 total_cli=0 total_srv=0
printf "%-6s %8s %10s %10s\n" storm made client server
for i in $(seq "$STORMS"); do
	c=$(counted $((BASE_PORT + i)) client) s=$(counted $((BASE_PORT + i)) server) ok=$(cat "$tmp/ok$i")
	printf "%-6s %8d %10d %10d\n" "$i" "$ok" "$c" "$s"
	total_cli=$((total_cli + c)) total_srv=$((total_srv + s))
	[ "$c" = "$ok" ] && [ "$s" = "$ok" ] || exact=0
done
printf "%-6s %8d %10d %10d\n" all "$made" "$total_cli" "$total_srv"
lost=$(awk '/^strata_agent_events_lost_total\{/ && $NF > 0 {print "  " $0; s += $NF} END {printf "total %d\n", s}' "$tmp/metrics")
echo "records lost:"; echo "$lost"
lost_total=$(tail -1 <<<"$lost" | awk '{print $2}')
rate=$(awk -v n="$made" -v t="$elapsed" 'BEGIN {printf "%.0f", n / t}')
echo "storms took ${elapsed}s: $rate connections/s in all ($failed failed at the client)"
echo "agent: $(awk -v a="$(cpu_s)" -v b="$cpu0" 'BEGIN {printf "%.1f", a - b}') CPU-s during the storms and the settle, RSS $(rss_mib) MiB, slowest scrape ${slowest}s"
if [ "$exact" = 1 ] && [ "$lost_total" = 0 ]; then echo "EXACT: every connection counted at both ends, no record lost"; else echo "NOT EXACT"; fi
if [ -n "$OUT" ]; then
	printf "made %s\nclient %s\nserver %s\nlost %s\nrate %s\nexact %s\n" "$made" "$total_cli" "$total_srv" "$lost_total" "$rate" "$exact" >"$OUT"
fi
if [ -n "$PROFILE" ]; then
	perf report -i "$PROFILE" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >"$PROFILE.txt" || true
	echo "profile: $PROFILE (top symbols in $PROFILE.txt)"
fi
[ "$exact" = 1 ] && [ "$lost_total" = 0 ]
