#!/usr/bin/env bash
# Builds the static release binaries and the release archives:
# target/dist/hitcounter-<version>-<arch>-linux-musl.tar.gz for x86_64 and aarch64, each
# holding the binary, hitcounter.service, README.md, LICENSE and SHA256SUMS (of those four),
# and beside each the archive's own .sha256. x86_64 builds with Debian's musl-tools (a C
# compiler for the bundled SQLite); aarch64 with cargo-zigbuild, whose zig (both from PyPI)
# cross-compiles C against musl's headers. Installs the rustup targets and these tools when
# they are missing. Prints each archive's path, x86_64's last.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
dist=target/dist

# archive TARGET: the archive of the binary built for TARGET, its path printed.
archive() {
    local target=$1
    local name="hitcounter-$version-${target%%-*}-linux-musl"
    rm -rf "${dist:?}/$name" "$dist/$name.tar.gz" "$dist/$name.tar.gz.sha256"
    mkdir -p "$dist/$name"
    install -m 0755 "target/$target/release/hitcounter" "$dist/$name/hitcounter"
    install -m 0644 hitcounter.service README.md LICENSE "$dist/$name/"
    (cd "$dist/$name" && sha256sum hitcounter hitcounter.service README.md LICENSE >SHA256SUMS)
    # Owner and times fixed, so the same tree makes the same archive.
    tar -C "$dist" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -czf "$dist/$name.tar.gz" "$name"
    (cd "$dist" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
    echo "$dist/$name.tar.gz"
}

for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
done

command -v cargo-zigbuild >/dev/null || pip install --quiet cargo-zigbuild >&2
cargo zigbuild --release --locked --target aarch64-unknown-linux-musl --bin hitcounter >&2
archive aarch64-unknown-linux-musl

command -v musl-gcc >/dev/null || apt-get install -y musl-tools >&2
cargo build --release --locked --target x86_64-unknown-linux-musl --bin hitcounter >&2
archive x86_64-unknown-linux-musl
