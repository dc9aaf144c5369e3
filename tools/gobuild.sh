# Shared by tools/*/build.sh (sourced): the command line, the cache hit, and
# `go build` with a running package count. The caller sets $tool (the log
# prefix) and $bin (the cache's bin dir) and defines all_present.

gobuild_start() { # gobuild_start "$@": answer --dir/--check, stop on a cache hit, else prepare to build
    case "${1:-}" in
        --dir) echo "$bin"; exit 0 ;;
        --check) all_present; exit $? ;;
        "") ;;
        *) echo "usage: $0 [--dir|--check]" >&2; exit 2 ;;
    esac
    if all_present; then
        echo "$tool: cached in $bin" >&2
        echo "$bin"
        exit 0
    fi
    command -v go >/dev/null || { echo "$tool: 'go' not found on PATH; install Go >= 1.26" >&2; exit 1; }
    mkdir -p "$bin"
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
}

log() { echo "$tool: $(date +%H:%M:%S) $*" >&2; }

# `go build -v` names each package as it is compiled; show a running count
# instead of thousands of lines.
progress() {
    awk -v tool="$tool" -v what="$1" '{ n++; if (n % 100 == 0) { printf "%s:   %s: %d packages compiled (%s)\n", tool, what, n, $0 > "/dev/stderr"; fflush("/dev/stderr") } }
        END { printf "%s:   %s: %d packages compiled\n", tool, what, n > "/dev/stderr" }'
}

build() { # build <what> <module dir> <go build args...>
    local what="$1" dir="$2" start=$SECONDS
    shift 2
    log "building $what (the first build takes a while; later ones reuse Go's build cache)"
    if ! (cd "$dir" && go mod download && go build -v "$@" 2>&1) | progress "$what"; then
        # -v output went to the counter; rerun quietly to show the compiler's error.
        (cd "$dir" && go build "$@") >&2 || true
        log "building $what FAILED"
        exit 1
    fi
    log "built $what in $((SECONDS - start))s"
}
