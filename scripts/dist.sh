#!/usr/bin/env bash
# Builds the static release binary and the release archive:
# target/dist/hitcounter-<version>-x86_64-linux-musl.tar.gz, holding the binary,
# hitcounter.service, README.md, LICENSE and SHA256SUMS (of those four), and beside it the
# archive's own .sha256. Installs the musl target (rustup) and Debian's musl-tools (a C compiler
# for the bundled SQLite) when they are missing. Prints the archive's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" >&2
command -v musl-gcc >/dev/null || apt-get install -y musl-tools >&2
cargo build --release --locked --target "$TARGET" --bin hitcounter >&2

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
name="hitcounter-$version-x86_64-linux-musl"
dist=target/dist
rm -rf "${dist:?}/$name" "$dist/$name.tar.gz" "$dist/$name.tar.gz.sha256"
mkdir -p "$dist/$name"
install -m 0755 "target/$TARGET/release/hitcounter" "$dist/$name/hitcounter"
install -m 0644 hitcounter.service README.md LICENSE "$dist/$name/"
(cd "$dist/$name" && sha256sum hitcounter hitcounter.service README.md LICENSE >SHA256SUMS)
# Owner and times fixed, so the same tree makes the same archive.
tar -C "$dist" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -czf "$dist/$name.tar.gz" "$name"
(cd "$dist" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$dist/$name.tar.gz"
