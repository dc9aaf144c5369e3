#!/usr/bin/env bash
# Build the Pulumi engine pieces the end-to-end tests run, once.
#
#   tools/pulumi/build.sh            build what is missing, print the bin dir
#   tools/pulumi/build.sh --dir      print the bin dir (build nothing)
#   tools/pulumi/build.sh --check    exit 0 when every binary is cached
#
# The pins live in cli/, yaml/ and kubernetes/ (go.mod + go.sum each): the
# `pulumi` CLI (pkg/v3/cmd/pulumi), the YAML language host (pulumi-yaml's
# cmd/pulumi-language-yaml) and the Kubernetes provider, served by our wrapper
# (kubernetes/serve.go) around pulumi-kubernetes' provider package. They are
# separate modules because each needs the engine SDK version it was released
# against: built together (one module, the newest SDK) the YAML host and the
# provider do not compile (the plugin-loader and codegen schema APIs changed).
# Binaries go to $INFRA_INFERENCE_CACHE/pulumi/<versions>-<hash of the inputs>/bin
# (default ~/.cache/infra-inference), outside the repository, and are reused
# while the inputs are unchanged. Progress goes to stderr; the only stdout line
# is the bin dir. At run time the tests need only the binaries: they find them
# on PATH, with a local state backend.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${INFRA_INFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infra-inference}"

modver() { # modver <dir> <module>: the version <dir>/go.mod requires
    awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/$1/go.mod"
}
pulumi_version="$(modver cli github.com/pulumi/pulumi/pkg/v3)"
yaml_version="$(modver yaml github.com/pulumi/pulumi-yaml)"
k8s_module_version="$(modver kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4)"
# The provider module is served only as a pseudo-version (no release tags on
# its provider/v4 path); that is still semver, and it is what the provider
# reports to the engine.
k8s_version="${k8s_module_version#v}"
# Bump when the recipe below changes (flags, staged files): a new cache key.
recipe=2
manifest_hash="$( (echo "recipe $recipe"; cat "$here"/{cli,yaml,kubernetes}/go.{mod,sum} "$here"/kubernetes/serve.go) \
    | sha256sum | cut -c1-12)"
key="pulumi-${pulumi_version}_yaml-${yaml_version}_kubernetes-${k8s_module_version##*-}-${manifest_hash}"
bin="$cache_root/pulumi/$key/bin"
binaries=(pulumi pulumi-language-yaml pulumi-resource-kubernetes)

all_present() {
    local b
    for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

tool=pulumi
# shellcheck source=../gobuild.sh
source "$here/../gobuild.sh"
gobuild_start "$@"

tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if ! [[ -x "$bin/pulumi" ]]; then
    # The Automation API refuses a CLI that reports no version.
    build "pulumi $pulumi_version" "$here/cli" -o "$tmp/pulumi" \
        -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pulumi_version" \
        github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    mv "$tmp/pulumi" "$bin/"
fi
if ! [[ -x "$bin/pulumi-language-yaml" ]]; then
    build "pulumi-language-yaml $yaml_version" "$here/yaml" -o "$tmp/pulumi-language-yaml" \
        -ldflags "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=$yaml_version" \
        github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml
    mv "$tmp/pulumi-language-yaml" "$bin/"
fi
if ! [[ -x "$bin/pulumi-resource-kubernetes" ]]; then
    # A staging copy of the wrapper's module: its two embedded files are
    # written there, never into the repository.
    stage="$tmp/kubernetes"
    mkdir -p "$stage"
    cp "$here"/kubernetes/{go.mod,go.sum,serve.go} "$stage/"
    (cd "$stage" && go mod download)
    upstream="$(cd "$stage" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes"
    # What upstream's generate.go does: the schema with its version set, and
    # the Terraform mapping, compacted.
    python3 - "$upstream" "$stage" "$k8s_version" <<'PY'
import json, sys
src, dst, version = sys.argv[1:]
schema = json.load(open(f"{src}/schema.json"))
schema["version"] = version
json.dump(schema, open(f"{dst}/schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(f"{src}/terraform-mapping.json")), open(f"{dst}/terraform-mapping-embed.json", "w"),
          separators=(",", ":"))
PY
    build "pulumi-resource-kubernetes $k8s_version" "$stage" -o "$tmp/pulumi-resource-kubernetes" \
        -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$k8s_version" .
    mv "$tmp/pulumi-resource-kubernetes" "$bin/"
fi

log "all binaries in $bin"
echo "$bin"
