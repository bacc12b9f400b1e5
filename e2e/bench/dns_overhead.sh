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

NAME=dns-overhead PREFIX=sd NET=10.244.201 EXTRA_ARGS=--http=off
# shellcheck source=lab.sh
source "$(dirname "$0")/lab.sh"

for mode in $MODES; do
	echo "== $mode: wrk -t $THREADS -c $CONNS -d $DURATION, $RUNS interleaved runs"
	printf "%-4s %12s %9s %12s %9s %12s %9s\n" run "none req/s" "p99 us" "dns=off" "p99 us" "dns=on" "p99 us"
	: >"$tmp/none"; : >"$tmp/off"; : >"$tmp/on"
	for i in $(seq "$RUNS"); do
		read -r none_rps none_p99 _ < <(measure)
		start_agent --dns=off
		read -r off_rps off_p99 _ < <(measure)
		stop_agent
		start_agent --dns=on
		read -r on_rps on_p99 _ < <(measure)
		stop_agent
		echo "$none_rps $none_p99" >>"$tmp/none"; echo "$off_rps $off_p99" >>"$tmp/off"; echo "$on_rps $on_p99" >>"$tmp/on"
		printf "%-4s %12s %9s %12s %9s %12s %9s\n" "$i" "$none_rps" "$none_p99" "$off_rps" "$off_p99" "$on_rps" "$on_p99"
	done
	for c in none off on; do
		eval "${c}_rps=\$(cut -d' ' -f1 \$tmp/$c | median)"
		eval "${c}_p99=\$(cut -d' ' -f2 \$tmp/$c | median)"
	done
	echo "medians: none $none_rps req/s p99 ${none_p99}us | dns=off $off_rps req/s p99 ${off_p99}us | dns=on $on_rps req/s p99 ${on_p99}us"
	echo "throughput ratio dns=on/dns=off: $(ratio "$on_rps" "$off_rps")   dns=off/none: $(ratio "$off_rps" "$none_rps")   dns=on/none: $(ratio "$on_rps" "$none_rps")"
	echo "p99 latency ratio dns=on/dns=off: $(ratio "$on_p99" "$off_p99")"
	echo "DNS probe in-kernel cost: $(kernel_ns_per_request --dns=on) ns per request (both ends, no DNS in the traffic; one more run with kernel.bpf_stats_enabled)"
	echo
done
