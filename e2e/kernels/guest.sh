#!/bin/bash
# Runs inside a kernel-matrix VM (PID 1's child, see vminit), on the host's
# root read-only under a tmpfs overlay: sets up what a booted host would
# have, then runs the probes' test binaries, the agent (to read each
# probe's mode) and the end-to-end scenario. Prints one "strata-..." line
# per result for the host to parse; a failed test's output in full.
# Usage: guest.sh BIN_DIR REPO_DIR
set -u
bin=$1 repo=$2

mount -t sysfs sys /sys
# /tmp stays the overlay's (writes land in its tmpfs): a tmpfs of its own
# would hide a checkout under the host's /tmp, where CI may clone.
mount -t tmpfs run /run
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
ln -sf /proc/self/fd /dev/fd
# The host's kernel modules are the host's: this kernel's come from its
# unpacked package (modprobe, and the kernel's own module autoloading).
rel=$(uname -r)
mkdir -p /lib/modules && rm -rf "/lib/modules/$rel" && ln -s "$STRATA_MODULES" "/lib/modules/$rel"
hostname strata-vm
ip link set lo up
ulimit -n 65536
ulimit -l unlimited
export CI=${CI:-} STRATA_E2E_BIN=$bin HOME=/root GOTRACEBACK=all

echo "strata-kernel $rel"

# run NAME DIR TIMEOUT BINARY ARGS...: one test binary, verbose, in the
# package's directory (as go test runs it).
run() {
	local name=$1 dir=$2 timeout=$3; shift 3
	[[ $name =~ ${STRATA_ONLY:-.} ]] || return 0
	local out=/tmp/$name.out start=$SECONDS
	(cd "$dir" && timeout -k 10 "$timeout" "$@" -test.v -test.count=1 >"$out" 2>&1)
	local rc=$?
	local pass fail skip
	pass=$(grep -c -- '^--- PASS' "$out")
	fail=$(grep -c -- '^--- FAIL' "$out")
	skip=$(grep -c -- '^--- SKIP' "$out")
	if [ $rc -ne 0 ]; then
		sed "s/^/  | /" "$out"
		[ $rc -eq 124 ] && echo "  | (timed out after $timeout)"
	fi
	grep -E -- '^--- (FAIL|SKIP)' "$out" | sed "s/^/  /"
	echo "strata-test $name rc=$rc pass=$pass fail=$fail skip=$skip seconds=$((SECONDS - start))"
}

# The modes the agent picks here, from its own /metrics.
modes() {
	local log=/tmp/agent.log
	"$bin/strata-agent" --kubernetes=off --http=on --dns=on --metrics-addr 127.0.0.1:9810 >"$log" 2>&1 &
	local pid=$! i
	for i in $(seq 1 120); do
		# /metrics answers from the start; the probes are in it once ready.
		curl -sf http://127.0.0.1:9810/readyz >/dev/null && curl -sf http://127.0.0.1:9810/metrics -o /tmp/metrics && break
		kill -0 $pid 2>/dev/null || break
		sleep 1
	done
	if [ -s /tmp/metrics ]; then
		sed -n 's/^strata_agent_probe_info{mode="\([^"]*\)",probe="\([^"]*\)"} 1$/strata-mode \2 \1/p' /tmp/metrics
	else
		echo "strata-mode agent failed"
	fi
	# Why a probe is disabled: the agent's one line about it.
	grep 'probe disabled' "$log" | sed -n 's/.*"probe": "\([^"]*\)", "error": "\(.*\)"}$/strata-why \1: \2/p'
	kill $pid 2>/dev/null; wait $pid 2>/dev/null
}

for t in "$bin"/probes/*.test; do
	n=$(basename "$t" .test)
	run "probes-$n" "$repo/probes/$n" 20m "$t"
done
[[ modes =~ ${STRATA_ONLY:-.} ]] && modes
run e2e-tcp "$repo/e2e/tcp" 20m "$bin/e2e/tcp.test" -test.run '^TestTCPGoldenSignals$'
run e2e-dns "$repo/e2e/dns" 20m "$bin/e2e/dns.test" -test.run '^TestDNS$'
# Without spans: no trace backend to start under emulation; the counts
# asserted are the same.
run e2e-http "$repo/e2e/http" 20m "$bin/e2e/http.test" -test.run '^TestHTTPGoldenSignals$/^counted_in_the_kernel$'
