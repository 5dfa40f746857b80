#!/usr/bin/env bash
# Builds the Debian packages tern and tern-mta (debian/) into build/deb/ — or into the
# directory given as the first argument — and runs lintian on them: exit 1 when lintian
# reports an error. The build runs in a copy of the tree (without build directories and
# .git) under OUT/src, so the worktree stays clean and dpkg-buildpackage's artifacts, which
# it writes next to the source directory, land in OUT.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/build/deb}" && cd "${1:-$root/build/deb}" && pwd)"
version="$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)"
src="$out/src/tern-$version"

rm -rf "$out/src"
mkdir -p "$src"
tar -C "$root" --exclude='./build' --exclude='./build-*' --exclude='./.git' --exclude='./var' \
    --exclude='./.dev-queue' --exclude='./obj-*' --exclude='./bench/results' --exclude='__pycache__' \
    -cf - . | tar -C "$src" -xf -
rm -f "$out"/tern_"$version"_* "$out"/tern-mta_"$version"_* "$out"/tern-dbgsym_"$version"_* \
      "$out"/tern-mta-dbgsym_"$version"_*

echo "build-deb: building in $src" >&2
(cd "$src" && dpkg-buildpackage -us -uc -b -j2)
for f in "$out"/src/*; do
  [ -f "$f" ] && mv "$f" "$out/"
done
rm -rf "$out/src"

arch="$(dpkg-architecture -qDEB_HOST_ARCH)"
debs=("$out/tern_${version}_$arch.deb" "$out/tern-mta_${version}_$arch.deb")
ls -l "${debs[@]}" >&2
echo "build-deb: lintian ${debs[*]}" >&2
lintian --display-info --fail-on error "${debs[@]}"
