# hack/testenv/images.sh: the node's images (sourced by scripts/testenv).
#
# Built without Docker, from the same definitions users build with
# `docker build`:
#   - a Debian bookworm base made by mmdebstrap (what debian:bookworm-slim is);
#   - images/acp/Dockerfile and images/runner/Dockerfile built by buildah with
#     BASE_IMAGE set to that base and ACP_BINARY=prebuilt (the `acp` binary
#     cargo built, stripped);
#   - a pause image holding Debian's static catatonit.
# Each is tagged by a hash of its inputs and kept as an archive under
# $cache_root/images, so a warm run only re-imports what changed.

images_dir() { printf '%s/images\n' "$cache_root"; }

# buildah with overlay storage under the cache. Builds run in a private mount
# namespace with a fresh run root (see build_images), so no mount outlives them.
bah() {
  buildah --storage-driver overlay --root "$cache_root/buildah/overlay" --runroot "$buildah_runroot" "$@"
}

hash_of() { sha256sum "$@" | awk '{print $1}' | sha256sum | cut -c1-12; }

# The acp binary the images take: $ACP_BINARY, or cargo's debug build.
acp_binary() {
  local bin=${ACP_BINARY:-}
  if [[ -z $bin ]]; then
    local rustc_key; rustc_key=$(rustc -vV | sha256sum | cut -c1-12)
    bin=${CARGO_TARGET_DIR:-$HOME/.cache/acp/target/$rustc_key}/debug/acp
  fi
  [[ -x $bin ]] || die "no acp binary at $bin: run \`cargo build -p acp\` first (or set ACP_BINARY)"
  printf '%s\n' "$bin"
}

# Debian bookworm minbase, without docs, man pages and locales (as -slim).
base_image() {
  local key; key=$(printf '%s\n' "${mmdebstrap_args[*]}" | sha256sum | cut -c1-12)
  local ref=localhost/acp/debian:bookworm-$key
  if ! bah inspect --type image "$ref" >/dev/null 2>&1; then
    say "making the Debian base image with mmdebstrap"
    local rootfs="$cache_root/buildah/debian-$key"
    rm -rf "$rootfs"; mkdir -p "$cache_root/buildah"
    mmdebstrap "${mmdebstrap_args[@]}" --format=directory bookworm "$rootfs" http://deb.debian.org/debian >&2 \
      || { rm -rf "$rootfs"; die "mmdebstrap failed"; }
    local ctr; ctr=$(bah from scratch)
    bah add "$ctr" "$rootfs" / >/dev/null
    bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    bah commit --rm --quiet "$ctr" "$ref" >/dev/null
    rm -rf "$rootfs"
  fi
  printf '%s\n' "$ref"
}
mmdebstrap_args=(--variant=minbase --mode=root --quiet
  --aptopt='Acquire::Retries "3"'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*')

# Writes `archive ref` for image $1 (acp | runner) built from images/$1/Dockerfile.
build_image() {
  local name=$1 base=$2 bin=$3 dockerfile=$repo/images/$1/Dockerfile
  local claude_version; claude_version=$(tr -d '[:space:]' < "$repo/hack/claude-code-version")
  local key
  key=$( { hash_of "$dockerfile" "$bin"; printf '%s %s\n' "$base" "$claude_version"; } | sha256sum | cut -c1-12)
  local image; case $name in acp) image=acp ;; runner) image=acp-runner ;; esac
  local ref=localhost/$image:$key archive; archive=$(images_dir)/$image-$key.tar
  if [[ ! -f $archive ]]; then
    say "building $ref from images/$name/Dockerfile"
    local ctx; ctx=$(mktemp -d)
    strip --strip-debug -o "$ctx/acp" "$bin" 2>/dev/null || cp "$bin" "$ctx/acp"
    local started=$SECONDS
    bah bud --quiet --layers --isolation chroot --network host --pull=false \
      --secret id=build-ca,src=/etc/ssl/certs/ca-certificates.crt \
      --build-arg "BASE_IMAGE=$base" --build-arg ACP_BINARY=prebuilt \
      --build-arg "CLAUDE_CODE_VERSION=$claude_version" \
      -f "$dockerfile" -t "$ref" "$ctx" >&2 || { rm -rf "$ctx"; die "building images/$name/Dockerfile failed"; }
    rm -rf "$ctx"
    mkdir -p "$(images_dir)"
    rm -f "$(images_dir)/$image"-*.tar
    bah push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >&2 || die "exporting $ref failed"
    mv "$archive.tmp" "$archive"
    say "built $ref in $((SECONDS - started))s"
    # Keep only the newest build of each image (layers stay cached).
    bah images --format '{{.Name}}:{{.Tag}}' | grep "^localhost/$image:" | grep -v ":$key\$" \
      | while read -r old; do bah rmi "$old" >/dev/null 2>&1 || true; done
  fi
  printf '%s %s\n' "$archive" "$ref"
}

# The sandbox ("pause") image: catatonit as PID 1 of each pod (-P: pause mode).
pause_image() {
  local key; key=$(hash_of "$(command -v catatonit)")
  local ref=localhost/acp/pause:$key archive; archive=$(images_dir)/pause-$key.tar
  if [[ ! -f $archive ]]; then
    local ctr; ctr=$(bah from scratch)
    bah copy "$ctr" "$(command -v catatonit)" /catatonit >/dev/null
    bah config --entrypoint '["/catatonit", "-P"]' --user 65535:65535 "$ctr"
    bah commit --rm --quiet "$ctr" "$ref" >/dev/null
    mkdir -p "$(images_dir)"
    bah push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >&2 || die "exporting $ref failed"
    mv "$archive.tmp" "$archive"
  fi
  printf '%s %s\n' "$archive" "$ref"
}

# Builds every image (as needed) and records them in $state_dir/images. The
# work happens in a private mount namespace, so buildah's mounts end with it.
build_images() {
  if [[ -z ${ACP_IMAGES_NS:-} ]]; then
    ACP_IMAGES_NS=1 unshare --mount --propagation private -- "$repo/scripts/testenv" --dir "$state_dir" images >/dev/null \
      || die "building the images failed"
    return
  fi
  buildah_runroot=$(mktemp -d /tmp/acp-buildah-run.XXXXXX)
  trap 'rm -rf "$buildah_runroot"' EXIT
  # Every build leaves its layers for the next one to reuse; keep that cache
  # bounded (a full rebuild takes a few minutes).
  local size_kb=0
  [[ -d $cache_root/buildah/overlay ]] && size_kb=$(du -sk "$cache_root/buildah/overlay" | cut -f1)
  if (( ${size_kb:-0} > 8 * 1024 * 1024 )); then
    say "buildah's layer cache is over 8 GiB: pruning it"
    bah rmi --all --force >/dev/null 2>&1 || true
  fi
  local bin base
  bin=$(acp_binary)
  base=$(base_image)
  {
    printf 'pause %s\n' "$(pause_image)"
    printf 'acp %s\n' "$(build_image acp "$base" "$bin")"
    printf 'runner %s\n' "$(build_image runner "$base" "$bin")"
  } > "$state_dir/images.tmp"
  mv "$state_dir/images.tmp" "$state_dir/images"
}

image_ref() { awk -v n="$1" '$1 == n {print $3}' "$state_dir/images" 2>/dev/null; }

node_ctr() { node_exec ctr --address "$node_runtime/containerd.sock" -n k8s.io "$@"; }

# Imports the recorded images into the node's containerd (those it lacks) and
# tags them with the names the deploy overlays use, as an air-gapped cluster
# would have them preloaded: `acp:dev` / `acp-runner:dev` (overlays/dev) and
# ghcr.io/acp-dev/…:<version> (base, production).
load_images() {
  local name archive ref version
  version=$(awk -F'"' '/^version = / {print $2; exit}' "$repo/Cargo.toml")
  while read -r name archive ref; do
    if ! node_ctr images ls -q "name==$ref" | grep -q .; then
      local started=$SECONDS
      node_ctr images import "$archive" >/dev/null || die "importing $ref into the node failed"
      say "loaded $ref into the node in $((SECONDS - started))s"
    fi
    local image=${ref#localhost/}; image=${image%%:*}
    [[ $name == pause ]] && continue
    node_ctr images tag --force "$ref" "docker.io/library/$image:dev" >/dev/null
    node_ctr images tag --force "$ref" "ghcr.io/acp-dev/$image:$version" >/dev/null
  done < "$state_dir/images"
  # Only this build's images stay: every earlier build's would pile up in the
  # node's store (containerd collects their layers once nothing refers to them).
  local current; current=$(awk '{print $3}' "$state_dir/images")
  local old
  for old in $(node_ctr images ls -q | grep -E '^localhost/acp(-runner)?:' | grep -vxF "$current" || true); do
    node_ctr images rm "$old" >/dev/null 2>&1 || true
  done
}
