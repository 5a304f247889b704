#!/usr/bin/env bash
# Vendors hls.js (the HLS player the console loads for HLS recordings) from the npm registry:
# the "light" build (no alternate audio, subtitles or DRM, which recordings do not have) and its
# license, byte for byte as published. The files are committed and embedded in roomtape-api
# (api/src/console.rs): the console fetches nothing from a CDN. Run this only to change the
# version, from anywhere:
#
#   api/console/vendor/hls.js/update.sh 1.7.4
set -euo pipefail

version="${1:?usage: update.sh VERSION (e.g. 1.7.4)}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "hls.js@$version" >/dev/null && tar xzf "hls.js-$version.tgz")
cp "$work/package/dist/hls.light.min.js" "$work/package/LICENSE" "$here/"
echo "hls.js $version: sha256 of the package $(sha256sum "$work/hls.js-$version.tgz" | cut -d' ' -f1)"
echo "hls.light.min.js: sha256 $(sha256sum "$here/hls.light.min.js" | cut -d' ' -f1)"
