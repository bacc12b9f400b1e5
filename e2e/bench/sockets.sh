#!/usr/bin/env bash
# 100 000 live sockets across namespaces: PAIRS pairs of network namespaces,
# each a tcpserver and a tcpclient holding PER connections open (one
# 100-byte request and reply each, then idle). The agent, started before
# them, follows both ends of every one. Then: how long a sweep of every
# namespace takes per socket, the agent's RSS before and after, and exact
# byte counts on a sample (every pair's series: PER x 100 bytes each way).
#
# Env: AGENT (bin/strata-agent), PAIRS (10), PER (10000), SWEEP (5s),
#      PEER_NICE (0: the nice value of the servers and clients).
set -euo pipefail

AGENT=${AGENT:-bin/strata-agent}
PAIRS=${PAIRS:-10}
PER=${PER:-10000}
SWEEP=${SWEEP:-5s}
PEER_NICE=${PEER_NICE:-0}
METRICS=127.0.0.1:19812
BASE_PORT=9300

[ "$(id -u)" = 0 ] || { echo "bench-sockets: run as root (network namespaces, eBPF)"; exit 1; }
[ -x "$AGENT" ] || { echo "bench-sockets: $AGENT not built (make build)"; exit 1; }
if pgrep -x strata-agent >/dev/null; then
	echo "bench-sockets: another strata-agent runs on this host; it would count these sockets too"; exit 1
fi
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((PER + 100)) ] || { echo "bench-sockets: $PER connections need more open files than $(ulimit -n)"; exit 1; }

id=sk$RANDOM
tmp=$(mktemp -d)
agent_pid=""
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
	pairs_down "$PAIRS"
	rm -rf "$tmp"
}
# shellcheck source=pairs.sh
source "$(dirname "$0")/pairs.sh"
trap cleanup EXIT
go build -o "$tmp/" ./e2e/cmd/tcpclient ./e2e/cmd/tcpserver

pairs_up "$PAIRS" 169
for i in $(seq "$PAIRS"); do
	ip netns exec "$id-$i-srv" nice -n "$PEER_NICE" "$tmp/tcpserver" -listen "10.244.$((169 + i)).1:$((BASE_PORT + i))" >"$tmp/srv$i.log" 2>&1 &
	disown
done

"$AGENT" --kubernetes=off --metrics-addr "$METRICS" --log-level warn --sweep-interval "$SWEEP" >"$tmp/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 300); do
	curl -sf "http://$METRICS/readyz" >/dev/null && break
	sleep 0.1
done
curl -sf "http://$METRICS/readyz" >/dev/null || { echo "bench-sockets: agent not ready:"; cat "$tmp/agent.log"; exit 1; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' /proc/"$agent_pid"/status; }
metric() { curl -sf "http://$METRICS/metrics" | awk -v m="$1" -v f="${2:-}" '$1 ~ "^" m "({|$)" && index($0, f) {s += $NF} END {printf "%.6g", s}'; }
sleep 2
rss0=$(rss_mib)

echo "== $PAIRS pairs of namespaces, $PER live connections each, sweep every $SWEEP"
for i in $(seq "$PAIRS"); do
	ip netns exec "$id-$i-cli" nice -n "$PEER_NICE" "$tmp/tcpclient" -connect "10.244.$((169 + i)).1:$((BASE_PORT + i))" \
		-count "$PER" -parallel "$PER" -requests 2 -hold 1h -timeout 60s >"$tmp/cli$i.json" 2>&1 &
	disown
done
want=$((2 * PAIRS * PER))
for _ in $(seq 600); do
	[ "$(metric strata_agent_tracked_sockets)" -ge "$want" ] 2>/dev/null && break
	sleep 1
done
tracked=$(metric strata_agent_tracked_sockets)
echo "tracked sockets: $tracked (want $want)"
# Two full sweeps with every socket in them.
sleep "$(awk -v s="${SWEEP%s}" 'BEGIN {print 2 * s + 1}')"
exact=1
printf "%-5s %12s %12s %12s %12s\n" pair cli_sent cli_recv srv_sent srv_recv
for i in $(seq "$PAIRS"); do
	port="destination_port=\"$((BASE_PORT + i))\""
	row=()
	for rep in client server; do
		for m in sent received; do
			v=$(curl -sf "http://$METRICS/metrics" | awk -v p="$port" -v r="reporter=\"$rep\"" -v m="strata_tcp_${m}_bytes_total" '$1 ~ "^" m "{" && index($0, p) && index($0, r) {s += $NF} END {printf "%d", s}')
			row+=("$v")
			[ "$v" = $((PER * 100)) ] || exact=0
		done
	done
	printf "%-5s %12s %12s %12s %12s\n" "$i" "${row[@]}"
done
sweep_s=$(metric strata_agent_sweep_seconds)
ns=$(metric strata_agent_sweep_namespaces)
echo "last sweep: ${sweep_s}s over $ns namespaces: $(awk -v s="$sweep_s" -v n="$tracked" 'BEGIN {printf "%.2f", s * 1e6 / n}') µs per tracked socket"
echo "agent RSS: ${rss0} MiB before, $(rss_mib) MiB with $tracked sockets tracked"
echo "records lost: $(metric strata_agent_events_lost_total)"
if [ "$exact" = 1 ] && [ "$tracked" -ge "$want" ]; then echo "EXACT: every pair's bytes, both ends"; else echo "NOT EXACT (want $((PER * 100)) bytes each way per pair)"; fi
