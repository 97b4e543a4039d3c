#!/usr/bin/env bash
# Builds the release of `hamster` for x86_64 Linux: one fully static binary (musl, with
# mimalloc as its allocator), stamped with the workspace version, the git commit and the
# build date, stripped (its debug info goes to a separate .debug file), and SHA256SUMS.
#
#   bash scripts/release.sh            # writes dist/hamster-VERSION-x86_64-linux
#   cd dist && sha256sum -c SHA256SUMS
#
# Then checks what it wrote: static, `hamster version` prints the version, the sums
# verify. If the musl target cannot be installed, it falls back to a static glibc build
# (crt-static) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "release: no version in Cargo.toml" >&2; exit 1; }
name="hamster-${version}-x86_64-linux"
dist=dist
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target" || target=""
fi
if [ -n "$target" ] && ! command -v musl-gcc >/dev/null; then
    # ring, mimalloc and the SIMD codec compile C: for musl they need musl-gcc.
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq musl-tools >/dev/null \
        || target=""
fi
if [ -n "$target" ]; then
    echo "release: building $name for $target (static musl)"
    # Not position-independent, so that `file` calls it "statically linked" (a
    # static-pie binary is static too, but tools and people look for those words).
    CC_x86_64_unknown_linux_musl=musl-gcc \
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static" \
        cargo build --locked --profile dist --target "$target" --bin hamster
else
    target=x86_64-unknown-linux-gnu
    echo "release: the musl target is not available here; building a static glibc binary (crt-static)"
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --locked --profile dist --target "$target" --bin hamster
fi
built="target/$target/dist/hamster"

mkdir -p "$dist"
rm -f "$dist/$name" "$dist/$name.debug" "$dist/SHA256SUMS"
cp "$built" "$dist/$name"
objcopy --only-keep-debug "$dist/$name" "$dist/$name.debug"
objcopy --strip-all --add-gnu-debuglink="$dist/$name.debug" "$dist/$name"
(cd "$dist" && sha256sum "$name" "$name.debug" > SHA256SUMS)

echo "release: checking $dist/$name"
kind=$(file -b "$dist/$name")
echo "  file: $kind"
case "$kind" in
    *"statically linked"*) ;;
    *) echo "release: $dist/$name is not statically linked" >&2; exit 1 ;;
esac
case "$kind" in
    *"not stripped"*) echo "release: $dist/$name still carries symbols" >&2; exit 1 ;;
esac
stamp=$("$dist/$name" version)
echo "  version: $stamp"
case "$stamp" in
    "hamster $version (commit "*", built "*")") ;;
    *) echo "release: expected 'hamster $version (commit ..., built ...)'" >&2; exit 1 ;;
esac
(cd "$dist" && sha256sum -c SHA256SUMS)
echo "  size: $(stat -c %s "$dist/$name") bytes (debug info: $(stat -c %s "$dist/$name.debug") bytes)"
