#!/usr/bin/env bash
# Overhead of the agent on a busy HTTP server: wrk against nginx in a
# network namespace, agent off and on, interleaved so drift on a shared
# machine hits both sides alike. Prints per-run figures, medians and ratios.
#
# Two workloads: keep-alive (requests on long-lived connections: the
# sweep's cost) and close (a new connection per request: the lifecycle
# probes' worst case).
#
# Then the cost of one exchange as its calls feel it (e2e/cmd/pingpong: one
# thread, one connection, no scheduler between the calls), the same three
# setups interleaved: steadier than throughput on a shared machine, and
# unlike bpf_stats it includes what the programs' reads cost the code
# around them.
#
# Env: AGENT (bin/strata-agent), RUNS (5), DURATION (10s), CONNS (32),
#      THREADS (2), MODES ("keepalive close"; empty: none), EXTRA_ARGS (appended to the
#      agent's command line), EXCHANGE_RUNS (5; 0 skips the ping-pong).
set -euo pipefail

AGENT=${AGENT:-bin/strata-agent}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
EXTRA_ARGS=${EXTRA_ARGS:-}
MODES=${MODES-keepalive close}
EXCHANGE_RUNS=${EXCHANGE_RUNS:-5}
METRICS=127.0.0.1:19810

[ "$(id -u)" = 0 ] || { echo "bench-overhead: run as root (network namespaces, eBPF)"; exit 1; }
for tool in wrk nginx ip curl bpftool; do
	command -v $tool >/dev/null || { echo "bench-overhead: $tool not found (make deps installs it)"; exit 1; }
done
[ -x "$AGENT" ] || { echo "bench-overhead: $AGENT not built (make build)"; exit 1; }

NAME=bench-overhead PREFIX=sb NET=10.244.200
# shellcheck source=lab.sh
source "$(dirname "$0")/lab.sh"

# Three setups, interleaved: no agent; the agent with TCP probes only
# (--http=off); the agent with HTTP capture too. DNS capture is off in both
# (its programs hook the same calls under the same names):
# e2e/bench/dns_overhead.sh measures it.
for mode in $MODES; do
	echo "== $mode: wrk -t $THREADS -c $CONNS -d $DURATION, $RUNS interleaved runs"
	printf "%-4s %12s %9s %12s %9s %12s %9s\n" run "off req/s" "p99 us" "tcp req/s" "p99 us" "http req/s" "p99 us"
	: >"$tmp/off"; : >"$tmp/tcp"; : >"$tmp/http"; : >"$tmp/cpu"; : >"$tmp/r_http"; : >"$tmp/r_tcp"
	for i in $(seq "$RUNS"); do
		read -r off_rps off_p99 _ < <(measure)
		start_agent --http=off --dns=off
		read -r tcp_rps tcp_p99 _ < <(measure)
		stop_agent
		start_agent --http=on --dns=off
		cpu0=$(agent_cpu_us)
		read -r http_rps http_p99 http_n < <(measure)
		cpu1=$(agent_cpu_us)
		awk -v a="$cpu1" -v b="$cpu0" -v n="$http_n" 'BEGIN {printf "%.2f\n", (a-b)/n}' >>"$tmp/cpu"
		lost=$(curl -sf "http://$METRICS/metrics" | awk '/^strata_agent_events_lost_total/ {s+=$2} END {print s+0}')
		stop_agent
		echo "$off_rps $off_p99" >>"$tmp/off"; echo "$tcp_rps $tcp_p99" >>"$tmp/tcp"; echo "$http_rps $http_p99" >>"$tmp/http"
		ratio "$http_rps" "$off_rps" >>"$tmp/r_http"; echo >>"$tmp/r_http"
		ratio "$tcp_rps" "$off_rps" >>"$tmp/r_tcp"; echo >>"$tmp/r_tcp"
		printf "%-4s %12s %9s %12s %9s %12s %9s   (events lost: %s)\n" "$i" "$off_rps" "$off_p99" "$tcp_rps" "$tcp_p99" "$http_rps" "$http_p99" "$lost"
	done
	for c in off tcp http; do
		eval "${c}_rps=\$(cut -d' ' -f1 \$tmp/$c | median)"
		eval "${c}_p99=\$(cut -d' ' -f2 \$tmp/$c | median)"
	done
	echo "medians: off $off_rps req/s p99 ${off_p99}us | tcp $tcp_rps req/s p99 ${tcp_p99}us | http $http_rps req/s p99 ${http_p99}us"
	echo "throughput ratio tcp/off: $(ratio "$tcp_rps" "$off_rps")   http/off: $(ratio "$http_rps" "$off_rps")   http/tcp: $(ratio "$http_rps" "$tcp_rps")"
	# Each run's own ratio: its three setups ran back to back, so drift on
	# a shared machine cancels better than in the ratio of medians.
	echo "median of per-run ratios tcp/off: $(grep . "$tmp/r_tcp" | median)   http/off: $(grep . "$tmp/r_http" | median)"
	echo "p99 latency ratio tcp/off: $(ratio "$tcp_p99" "$off_p99")   http/off: $(ratio "$http_p99" "$off_p99")"
	echo "agent CPU with HTTP capture: $(median <"$tmp/cpu") µs per request (user and system)"
	echo "HTTP capture in-kernel cost: $(kernel_ns_per_request --http=on --dns=off) ns per request (all capture programs, both ends; one more run with kernel.bpf_stats_enabled)"
	echo
done

# exchange_ns: the fastest of three one-second ping-pong rounds, ns per
# exchange: other tenants only ever add time, so the least disturbed round
# is the closest to the calls' own cost.
exchange_ns() { ip netns exec "$srv" "$tmp/pingpong" -rounds 3 -round 1s | sort -n | head -1; }

if [ "$EXCHANGE_RUNS" -gt 0 ]; then
	go build -o "$tmp/pingpong" ./e2e/cmd/pingpong
	echo "== one exchange (e2e/cmd/pingpong), $EXCHANGE_RUNS interleaved runs: ns per exchange, both ends"
	printf "%-4s %9s %9s %9s\n" run off tcp http
	: >"$tmp/x_off"; : >"$tmp/x_tcp"; : >"$tmp/x_http"
	for i in $(seq "$EXCHANGE_RUNS"); do
		off=$(exchange_ns)
		start_agent --http=off --dns=off
		tcp=$(exchange_ns)
		stop_agent
		start_agent --http=on --dns=off
		http=$(exchange_ns)
		stop_agent
		echo "$off" >>"$tmp/x_off"; echo "$tcp" >>"$tmp/x_tcp"; echo "$http" >>"$tmp/x_http"
		printf "%-4s %9s %9s %9s\n" "$i" "$off" "$tcp" "$http"
	done
	off=$(median <"$tmp/x_off") tcp=$(median <"$tmp/x_tcp") http=$(median <"$tmp/x_http")
	echo "medians: off $off ns | tcp $tcp ns | http $http ns"
	echo "HTTP capture adds $(awk -v a="$http" -v b="$tcp" 'BEGIN {printf "%.0f", a-b}') ns per exchange over the TCP probes alone (these add $(awk -v a="$tcp" -v b="$off" 'BEGIN {printf "%.0f", a-b}') ns)"
fi
