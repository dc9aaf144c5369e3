#!/usr/bin/env bash
# Build the runtime image from Debian packages and PyPI wheels: no base image,
# no registry, no container engine.
#
#   tools/image/build.sh            build what is missing; print the OCI archive's path
#   tools/image/build.sh --check    exit 0 when the image of this source tree is cached
#   tools/image/build.sh --archive  print the archive's path (build nothing)
#   tools/image/build.sh --ref      print the image reference the archive names
#
# Three layers, each cached under $INFRA_INFERENCE_CACHE/image (default
# ~/.cache/infra-inference) by a hash of its inputs, so a source change
# rebuilds only the last one:
#   base  debootstrap --variant=minbase bookworm + Debian's python3.11 and
#         ca-certificates, docs and apt lists dropped, user 10001 (`infra`)
#   deps  a venv in /opt/infra-inference with tools/image/requirements.py's list
#         (the project's runtime dependencies, no Pulumi SDKs) from PyPI wheels
#   app   the project's wheel, --no-deps
# Entrypoint, user and environment come from tools/image/config.json (a test
# holds docker/Dockerfile.cpu to the same). Needs root (debootstrap, chroot),
# debootstrap, gzip and a Python >= 3.11 with pip ($PYTHON, default the
# project's .venv). Progress goes to stderr; stdout is the one answer.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache_root="${INFRA_INFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infra-inference}"
cache="$cache_root/image"
python="${PYTHON:-$repo/.venv/bin/python}"
[[ -x "$python" ]] || python=python3
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
# Debian's interpreter and what its ssl module needs to verify model hosts.
debs=(python3.11-minimal libpython3.11-stdlib ca-certificates)
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")"
# Bump when the recipe below changes: new cache keys.
recipe=1

hash_of() { sha256sum | cut -c1-16; }
base_key="$( (echo "recipe $recipe $suite ${debs[*]}") | hash_of)"
requirements="$("$python" "$here/requirements.py" "$repo/pyproject.toml")"
deps_key="$( (echo "$base_key"; echo "$requirements") | hash_of)"
app_key="$( (echo "$deps_key"; cat "$here/config.json";
             cd "$repo" && git ls-files -co --exclude-standard pyproject.toml README.md infra_inference \
                 | LC_ALL=C sort | xargs sha256sum) | hash_of)"
ref="localhost/infra-inference/runtime:$version-${app_key:0:12}"
archive="$cache/app-$app_key/runtime.oci.tar"

case "${1:-}" in
    --archive) echo "$archive"; exit 0 ;;
    --ref) echo "$ref"; exit 0 ;;
    --check) [[ -s "$archive" ]]; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--check|--archive|--ref]" >&2; exit 2 ;;
esac

log() { echo "image: $(date +%H:%M:%S) $*" >&2; }

if [[ -s "$archive" ]]; then
    log "cached: $archive"
    echo "$archive"
    exit 0
fi
[[ $EUID -eq 0 ]] || { echo "image: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "image: 'debootstrap' not found; run tools/realnode/setup.sh (apt-get install debootstrap)" >&2; exit 1; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/.work.XXXXXX")"
cleanup() {
    # debootstrap and our chroots mount /proc inside the tree: unmount before removing.
    local m
    for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" || true; done
    rm -rf "$work"
}
trap cleanup EXIT

layer() { # layer <root> <out dir> <paths...>: out/layer.tar.gz and out/diffid
    local root="$1" out="$2"
    shift 2
    tar -C "$root" --numeric-owner --xattrs --no-recursion -cf "$work/layer.tar" "$@"
    sha256sum "$work/layer.tar" | awk '{print "sha256:" $1}' > "$out/diffid.partial"
    gzip -6 -n -c "$work/layer.tar" > "$out/layer.tar.gz.partial"
    rm "$work/layer.tar"
    mv "$out/layer.tar.gz.partial" "$out/layer.tar.gz"
    mv "$out/diffid.partial" "$out/diffid"
}

in_root() { # in_root <root> <command...>: run in a chroot with /proc mounted
    local root="$1"
    shift
    mount -t proc proc "$root/proc"
    local rc=0
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@" || rc=$?
    umount "$root/proc"
    return $rc
}

# -- base: Debian minbase + python3.11 ------------------------------------------
base="$cache/base-$base_key"
if ! [[ -s "$base/layer.tar.gz" ]]; then
    start=$SECONDS
    log "base: debootstrap $suite (${debs[*]}) from $mirror"
    rm -rf "$base" && mkdir -p "$work/base"
    debootstrap --variant=minbase --include="$(IFS=,; echo "${debs[*]}")" "$suite" "$work/base/rootfs" "$mirror" \
        > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    r="$work/base/rootfs"
    in_root "$r" useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin infra
    # The model cache is a volume in pods; the directory (owned by the user) is for
    # engines that run the image without one.
    install -d -o 10001 -g 10001 "$r/var/cache/infra-inference"
    # Nothing at run time reads docs, manuals, translations or apt's state.
    rm -rf "$r"/usr/share/{doc,man,info,locale,lintian,linda}/* "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* \
           "$r"/var/log/* "$r"/dev/*
    # The runtime mounts /proc, /sys and /dev: their directories, empty, are enough.
    (cd "$r" && find . -mindepth 1 \( -path ./proc -o -path ./sys -o -path ./dev \) -prune -print -o -print \
        | LC_ALL=C sort) > "$work/paths"
    mkdir -p "$work/base/out"
    layer "$r" "$work/base/out" -T "$work/paths"
    mv "$work/base/rootfs" "$work/base/out/rootfs"
    mv "$work/base/out" "$base"
    log "base: built in $((SECONDS - start))s"
fi

# -- deps: the runtime's Python packages in /opt/infra-inference ----------------
deps="$cache/deps-$deps_key"
if ! [[ -s "$deps/layer.tar.gz" ]]; then
    start=$SECONDS
    log "deps: downloading wheels"
    rm -rf "$deps" && mkdir -p "$work/deps/out/wheels"
    echo "$requirements" > "$work/deps/out/wheels/requirements.txt"
    "$python" -m pip download --quiet --only-binary=:all: --dest "$work/deps/out/wheels" \
        -r "$work/deps/out/wheels/requirements.txt" pip >&2
    cp -al "$base/rootfs" "$work/deps/rootfs"
    r="$work/deps/rootfs"
    mkdir -p "$r/tmp/wheels" && cp "$work/deps/out/wheels"/* "$r/tmp/wheels/"
    in_root "$r" python3.11 -m venv --without-pip /opt/infra-inference
    log "deps: installing into the venv"
    # pip runs from its own wheel and is not installed: the image carries no installer.
    in_root "$r" sh -c 'cd /tmp/wheels && set -- pip-*.whl && /opt/infra-inference/bin/python "$1/pip" install \
        --quiet --no-index --find-links /tmp/wheels --no-warn-script-location -r requirements.txt' >&2
    rm -rf "$r/tmp/wheels"
    # The app stage needs only pip's wheel again.
    find "$work/deps/out/wheels" -type f ! -name 'pip-*.whl' -delete
    (cd "$r" && find opt/infra-inference | LC_ALL=C sort) > "$work/paths"
    layer "$r" "$work/deps/out" -T "$work/paths"
    mv "$r" "$work/deps/out/rootfs"
    mv "$work/deps/out" "$deps"
    log "deps: built in $((SECONDS - start))s ($(du -sh "$deps/rootfs/opt/infra-inference" | cut -f1) installed)"
fi

# -- app: the project's wheel ----------------------------------------------------
start=$SECONDS
app="$(dirname "$archive")"
mkdir -p "$work/app/out" "$work/app/wheel"
log "app: building the project wheel"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/app/wheel" "$repo" >&2
cp -al "$deps/rootfs" "$work/app/rootfs"
r="$work/app/rootfs"
mkdir -p "$r/tmp/wheels" && cp "$work/app/wheel"/*.whl "$deps/wheels"/pip-*.whl "$r/tmp/wheels/"
# Hard links share the inode, so creating them bumped every file's ctime: what the
# install adds is what changes status after this stamp.
touch "$work/stamp" && sleep 1
in_root "$r" sh -c 'cd /tmp/wheels && set -- pip-*.whl && /opt/infra-inference/bin/python "$1/pip" install \
    --quiet --no-index --no-deps --no-warn-script-location infra_inference-*.whl' >&2
rm -rf "$r/tmp/wheels"
(cd "$r" && find opt/infra-inference -cnewer "$work/stamp" | LC_ALL=C sort) > "$work/paths"
layer "$r" "$work/app/out" -T "$work/paths"
digest="$("$python" "$here/oci.py" "$work/app/out/runtime.oci.tar" --ref "$ref" --config "$here/config.json" \
    "$base/layer.tar.gz:$(cat "$base/diffid")" "$deps/layer.tar.gz:$(cat "$deps/diffid")" \
    "$work/app/out/layer.tar.gz:$(cat "$work/app/out/diffid")")"
echo "$digest" > "$work/app/out/digest"
echo "$ref" > "$work/app/out/ref"
rm -rf "$app" && mv "$work/app/out" "$app"
# Older app layers are superseded by this one.
find "$cache" -maxdepth 1 -name 'app-*' ! -path "$app" -exec rm -rf {} +
log "app: built in $((SECONDS - start))s; $ref@$digest, $(du -h "$archive" | cut -f1) archive"
echo "$archive"
