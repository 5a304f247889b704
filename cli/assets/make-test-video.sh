#!/usr/bin/env bash
# Makes cli/assets/test-video.mp4, the recording `roomtape simulate` uploads: 4 s of ffmpeg's
# test pattern (testsrc2, 320x240, 15 fps, with its running clock) and a 440 Hz tone, H.264
# (constrained baseline, yuv420p) + AAC-LC in an MP4 with the index in front (+faststart), so any
# browser plays it. The MP4 is committed and embedded with include_bytes!: building roomtape
# never needs ffmpeg. Run this only to change the video, from anywhere:
#
#   apt-get install -y ffmpeg    # Debian 12 ships ffmpeg 5.1
#   cli/assets/make-test-video.sh
#
# As reproducible as ffmpeg allows: one encoder thread, bitexact muxing and encoding (no
# encoder tags, zero creation times), no metadata or chapters, and the x264 SEI (its version
# and settings string) removed. The same ffmpeg build gives the same bytes; another build may
# not, which is fine as long as the committed file is the one that is embedded.
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)/test-video.mp4"
tmp="$(mktemp --suffix=.mp4)"
trap 'rm -f "$tmp"' EXIT

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=320x240:rate=15:duration=4" \
  -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=4" \
  -map 0:v -map 1:a \
  -c:v libx264 -profile:v baseline -level 3.0 -pix_fmt yuv420p -preset medium -crf 30 -g 30 \
  -threads 1 -x264-params "threads=1:sliced-threads=0" -bsf:v "filter_units=remove_types=6" \
  -c:a aac -ac 1 -b:a 48k \
  -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
  -map_metadata -1 -map_chapters -1 -metadata:s:v handler_name= -metadata:s:a handler_name= \
  -movflags +faststart -shortest \
  "$tmp"

mv "$tmp" "$out"
trap - EXIT
echo "wrote $out ($(stat -c %s "$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1))"
