#!/usr/bin/env bash
# Build the test control plane's binaries from their Go modules, once.
#
#   tools/controlplane/build.sh            build what is missing, print the bin dir
#   tools/controlplane/build.sh --dir      print the bin dir (build nothing)
#   tools/controlplane/build.sh --check    exit 0 when every binary is cached
#
# The pins live in kubernetes/, etcd/ and kwok/ (go.mod + go.sum each, separate
# modules so their dependency graphs never constrain one another). Binaries go
# to $INFRA_INFERENCE_CACHE/controlplane/<versions>-<hash of the manifests>/bin
# (default ~/.cache/infra-inference), outside the repository, and are reused
# while the manifests are unchanged. The five Kubernetes binaries (the control
# plane's three, and the real test node's kubelet and kube-proxy) are built by
# one `go build` so they share compiled packages. pause/ is the real node's
# sandbox program (stdlib only), packed as an OCI archive (pause.oci.tar) by
# tools/image/oci.py. Progress goes to stderr; the only stdout line is the bin dir.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${INFRA_INFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infra-inference}"

modver() { # modver <dir> <module>: the version <dir>/go.mod requires
    awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1/go.mod"
}
k8s_version="$(modver "$here/kubernetes" k8s.io/kubernetes)"
etcd_version="$(modver "$here/etcd" go.etcd.io/etcd/server/v3)"
kwok_version="$(modver "$here/kwok" sigs.k8s.io/kwok)"
# Bump when the recipe below changes (flags, stage files): a new cache key.
recipe=2
manifest_hash="$( (echo "recipe $recipe"; cat "$here"/{kubernetes,etcd,kwok}/go.{mod,sum} "$here"/pause/{go.mod,main.go} \
                   "$here/../image/oci.py") | sha256sum | cut -c1-12)"
key="k8s-${k8s_version}_etcd-${etcd_version}_kwok-${kwok_version}-${manifest_hash}"
bin="$cache_root/controlplane/$key/bin"
kube_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
binaries=("${kube_binaries[@]}" etcd kwok pause)
stages="kwok-stages.yaml"  # kwok's "fast" simulation stages, from its module

all_present() {
    local b
    for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
    [[ -s "$bin/$stages" && -s "$bin/pause.oci.tar" ]]
}

tool=controlplane
# shellcheck source=../gobuild.sh
source "$here/../gobuild.sh"
gobuild_start "$@"

tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Version stamps so `kube-apiserver --version` and /version report the release
# instead of v0.0.0-master (the emulation version comes from the source).
ver="${k8s_version#v}"
ldflags="-s -w"
for kv in "gitVersion=$k8s_version" "gitMajor=${ver%%.*}" "gitMinor=$(cut -d. -f2 <<<"$ver")" \
          "gitTreeState=clean" "buildDate=1970-01-01T00:00:00Z"; do
    ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done

kube_missing() { local b; for b in "${kube_binaries[@]}"; do [[ -x "$bin/$b" ]] || return 0; done; return 1; }
if kube_missing; then
    build "kubernetes $k8s_version" "$here/kubernetes" -ldflags "$ldflags" -o "$tmp/" \
        "${kube_binaries[@]/#/k8s.io/kubernetes/cmd/}"
    mv "$tmp"/kube* "$bin/"
fi
if ! [[ -x "$bin/etcd" ]]; then
    build "etcd $etcd_version" "$here/etcd" -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
    mv "$tmp/etcd" "$bin/"
fi
if ! [[ -x "$bin/kwok" ]]; then
    build "kwok $kwok_version" "$here/kwok" -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok
    mv "$tmp/kwok" "$bin/"
fi

if ! [[ -x "$bin/pause" && -s "$bin/pause.oci.tar" ]]; then
    build "pause" "$here/pause" -ldflags "-s -w" -o "$tmp/pause" .
    mkdir -p "$tmp/pause-root" && cp "$tmp/pause" "$tmp/pause-root/pause"
    tar -C "$tmp/pause-root" --numeric-owner --owner=0 --group=0 -cf "$tmp/pause.tar" pause
    diff_id="sha256:$(sha256sum "$tmp/pause.tar" | cut -d' ' -f1)"
    gzip -n "$tmp/pause.tar"
    echo '{"Entrypoint": ["/pause"], "User": "65535:65535"}' > "$tmp/pause.json"
    python3 "$here/../image/oci.py" "$tmp/pause.oci.tar" --ref localhost/infra-inference/pause:1 \
        --config "$tmp/pause.json" "$tmp/pause.tar.gz:$diff_id" >/dev/null
    mv "$tmp/pause" "$tmp/pause.oci.tar" "$bin/"
fi

if ! [[ -s "$bin/$stages" ]]; then
    # kwok v0.8 has no built-in stages: without a Stage config it refuses to
    # start. Take the "fast" set (kustomize/stage/fast in its repository: ready
    # nodes with lease heartbeats, pods Running at once, deletions finalized)
    # from the pinned module, so the stages match the kwok binary.
    src="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        echo "---"
        cat "$src/$f"
    done > "$tmp/$stages"
    mv "$tmp/$stages" "$bin/"
fi

log "all binaries in $bin"
echo "$bin"
