# Pairs of network namespaces for the storm and socket benchmarks, sourced:
# pair i is $id-$i-srv (10.244.$((NET0 + i)).1) and $id-$i-cli (.2), joined
# by a veth. The caller sets id (a short prefix: veth names are 15
# characters at most).

# pairs_up N NET0: make N pairs, their links up, room for bursts of
# connections at the server and ports for them at the client.
pairs_up() {
	local n=$1 net0=$2 i srv cli net
	for i in $(seq "$n"); do
		srv=$id-$i-srv cli=$id-$i-cli net=10.244.$((net0 + i))
		ip netns add "$srv"
		ip netns add "$cli"
		ip link add "${id}s$i" netns "$srv" type veth peer name "${id}c$i" netns "$cli"
		ip -n "$srv" addr add "$net.1/24" dev "${id}s$i"
		ip -n "$cli" addr add "$net.2/24" dev "${id}c$i"
		for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
		ip -n "$srv" link set "${id}s$i" up
		ip -n "$cli" link set "${id}c$i" up
		ip netns exec "$srv" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
		ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
	done
}

# pairs_down N: kill what runs in the pairs and delete them (what is not
# there is fine: this runs on every exit).
pairs_down() {
	local n=$1 i side
	for i in $(seq "$n"); do
		for side in srv cli; do
			ip netns pids "$id-$i-$side" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
			ip netns del "$id-$i-$side" 2>/dev/null || true
		done
	done
}
