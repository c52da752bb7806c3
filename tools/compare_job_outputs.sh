#!/usr/bin/env bash
# Runs the slide, image and audio examples (untrained stand-ins, fixed inputs) into OUT, so
# that two builds' outputs can be compared with tools/compare_job_outputs.py:
#
#   git worktree add /tmp/before <commit> && (cd /tmp/before && bash tools/compare_job_outputs.sh /tmp/out-before)
#   bash tools/compare_job_outputs.sh /tmp/out-after
#   python3 tools/compare_job_outputs.py /tmp/out-before /tmp/out-after
#
# (An older checkout without this script: copy it there first.) Set TARGET to run binaries
# already built elsewhere (default: target/release/examples of this checkout).
set -euo pipefail
out=${1:?usage: compare_job_outputs.sh OUT_DIR}
bin=${TARGET:-target/release/examples}
if [ -z "${TARGET:-}" ]; then
  CARGO_PROFILE_RELEASE_DEBUG=false cargo build --release -q --example slide_heatmap --example embed_images --example embed_audio
fi
rm -rf "$out" && mkdir -p "$out"
# The README's main job, and a level-0 run with every patch.
"$bin/slide_heatmap" fixtures/slides/ihc-sparse --out "$out/slide" --mpp 0.5 --min-tissue 0.25 >"$out/slide.log"
"$bin/slide_heatmap" fixtures/slides/ihc-raw --out "$out/slide-all" --level 0 --all-patches --k 2 --batch 5 >"$out/slide-all.log"
# Image files, good and bad (the bad ones listed in failed_files), two models.
"$bin/embed_images" fixtures/images/patches fixtures/images/rgb8.png fixtures/images/grey16.png fixtures/images/not_an_image.png \
  --out "$out/images.parquet" --batch 2 >"$out/images.log"
"$bin/embed_images" fixtures/images/patches fixtures/images/rgb8.png --model vit_base_patch16_224 --out "$out/images-b16.parquet" >"$out/images-b16.log"
# Audio recordings, good and bad, with the picture.
"$bin/embed_audio" fixtures/hear/breath_48k_float.wav fixtures/hear/speech_noise_16k.wav fixtures/hear/speech_22k05_8bit.wav fixtures/hear/short_0.1s_16k.wav fixtures/hear/bad/not_audio.wav \
  --out "$out/audio.parquet" --batch 4 --picture "$out/audio.png" >"$out/audio.log"
echo "wrote $out"
