#!/usr/bin/env bash
# Builds the real backends the end-to-end tests run (each from its own
# wrapper module under e2e/tools/) into a cache outside the repository, so a
# machine builds each once: STRATA_TOOLS_DIR, default /var/cache/strata/bin.
# A tool is rebuilt when its wrapper module changes. Arguments name the
# wrapper modules to build (e.g. `build.sh k8s` for make demo); none: all.
set -euo pipefail
cd "$(dirname "$0")"
out=${STRATA_TOOLS_DIR:-/var/cache/strata/bin}
mkdir -p "$out"
only=" $* "

build() { # module-dir binary main-package [ldflags]
	local mod=$1 name=$2 pkg=$3 ldflags=${4:-} stamp
	[ "$only" = "  " ] || [[ "$only" == *" $mod "* ]] || return 0
	stamp=$( (cat "$mod/go.mod" "$mod/go.sum"; [ -z "$ldflags" ] || echo "$ldflags") | sha256sum | cut -c1-16)
	if [ -x "$out/$name" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
		return
	fi
	echo "building $name into $out (first time on this machine: a few minutes)"
	(cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$out/$name" "$pkg")
	echo "$stamp" >"$out/$name.stamp"
}

build jaeger jaeger github.com/jaegertracing/jaeger/cmd/jaeger
# Static: its zstd binding would otherwise want a C library at build time.
CGO_ENABLED=0 build victorialogs victoria-logs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs
k8s="-X k8s.io/component-base/version.gitVersion=v1.33.13 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33"
for b in kube-apiserver kube-controller-manager kubectl; do
	build k8s "$b" "k8s.io/kubernetes/cmd/$b" "$k8s"
done
