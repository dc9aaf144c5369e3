#!/usr/bin/env bash
# Build the Pulumi engine pieces the end-to-end tests run, once.
#
#   tools/pulumi/build.sh            build what is missing, print the bin dir
#   tools/pulumi/build.sh --dir      print the bin dir (build nothing)
#   tools/pulumi/build.sh --check    exit 0 when every binary is cached
#
# The pins live in go.mod + go.sum here: the `pulumi` CLI (pkg/v3/cmd/pulumi),
# the YAML language host (pulumi-yaml's cmd/pulumi-language-yaml) and the
# Kubernetes provider, served by our wrapper (kubernetes/serve.go) around
# pulumi-kubernetes' provider package. All three are built by one `go build` so
# the packages they share are compiled once. Binaries go to
# $INFRA_INFERENCE_CACHE/pulumi/<versions>-<hash of the inputs>/bin (default
# ~/.cache/infra-inference), outside the repository, and are reused while the
# inputs are unchanged. Progress goes to stderr; the only stdout line is the
# bin dir. Nothing here is needed at run time but the binaries: the tests find
# them on PATH, with a local state backend.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${INFRA_INFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infra-inference}"

modver() { # modver <module>: the version go.mod requires
    awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/go.mod"
}
pulumi_version="$(modver github.com/pulumi/pulumi/pkg/v3)"
yaml_version="$(modver github.com/pulumi/pulumi-yaml)"
k8s_module_version="$(modver github.com/pulumi/pulumi-kubernetes/provider/v4)"
# The provider module is served only as a pseudo-version (no release tags on
# its provider/v4 path); that is still semver, and it is what the provider
# reports to the engine.
k8s_version="${k8s_module_version#v}"
# Bump when the recipe below changes (flags, staged files): a new cache key.
recipe=1
manifest_hash="$( (echo "recipe $recipe"; cat "$here"/go.{mod,sum} "$here"/kubernetes/serve.go) | sha256sum | cut -c1-12)"
key="pulumi-${pulumi_version}_yaml-${yaml_version}_kubernetes-${k8s_module_version##*-}-${manifest_hash}"
bin="$cache_root/pulumi/$key/bin"
binaries=(pulumi pulumi-language-yaml pulumi-resource-kubernetes)

all_present() {
    local b
    for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

case "${1:-}" in
    --dir) echo "$bin"; exit 0 ;;
    --check) all_present; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--dir|--check]" >&2; exit 2 ;;
esac

if all_present; then
    echo "pulumi: cached in $bin" >&2
    echo "$bin"
    exit 0
fi

command -v go >/dev/null || { echo "pulumi: 'go' not found on PATH; install Go >= 1.26" >&2; exit 1; }
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"

log() { echo "pulumi: $(date +%H:%M:%S) $*" >&2; }

tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# A staging copy of the module: the wrapper's two embedded files are written
# there, never into the repository.
stage="$tmp/module"
mkdir -p "$stage/kubernetes"
cp "$here"/go.{mod,sum} "$stage/"
cp "$here/kubernetes/serve.go" "$stage/kubernetes/"
(cd "$stage" && go mod download)
upstream="$(cd "$stage" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes"
# What upstream's generate.go does: the schema with its version set, and the
# Terraform mapping, compacted.
python3 - "$upstream" "$stage/kubernetes" "$k8s_version" <<'PY'
import json, sys
src, dst, version = sys.argv[1:]
schema = json.load(open(f"{src}/schema.json"))
schema["version"] = version
json.dump(schema, open(f"{dst}/schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(f"{src}/terraform-mapping.json")), open(f"{dst}/terraform-mapping-embed.json", "w"), separators=(",", ":"))
PY

ldflags="-s -w"
ldflags+=" -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pulumi_version"
ldflags+=" -X github.com/pulumi/pulumi-yaml/pkg/version.Version=$yaml_version"
ldflags+=" -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$k8s_version"

# `go build -v` names each package as it is compiled; show a running count
# instead of thousands of lines.
progress() {
    awk '{ n++; if (n % 100 == 0) { printf "pulumi:   %d packages compiled (%s)\n", n, $0 > "/dev/stderr"; fflush("/dev/stderr") } }
        END { printf "pulumi:   %d packages compiled\n", n > "/dev/stderr" }'
}
start=$SECONDS
log "building pulumi $pulumi_version, pulumi-language-yaml $yaml_version, pulumi-resource-kubernetes $k8s_version (the first build takes a while; later ones reuse Go's build cache)"
args=(-ldflags "$ldflags" -o "$tmp/out/" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
      github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml ./kubernetes)
mkdir -p "$tmp/out"
if ! (cd "$stage" && go build -v "${args[@]}" 2>&1) | progress; then
    # -v output went to the counter; rerun quietly to show the compiler's error.
    (cd "$stage" && go build "${args[@]}") >&2 || true
    log "build FAILED"
    exit 1
fi
mv "$tmp/out/kubernetes" "$tmp/out/pulumi-resource-kubernetes"
mv "$tmp/out"/* "$bin/"
log "built in $((SECONDS - start))s; all binaries in $bin"
echo "$bin"
