#!/usr/bin/env bash
# Prepared GPU check for a session that is lent the GPU machine (see ../shared/cuda/README.md).
#
# Here (no GPU):   bash tools/gpu_check.sh build     # builds the CUDA test and bench binaries into .gpu/
# On the device:   bash tools/gpu_check.sh run       # (carry .gpu) CUDA parity test, encoder and
#                                                    # end-to-end benches, PyTorch peer, same call
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  build)
    (source ../shared/cuda/env.sh && cargo test --release --features cuda -p haidef-wsi-encoders --test parity --no-run \
       && cargo bench --features cuda --bench encoder --no-run && cargo bench --features cuda --bench pipeline --no-run)
    rm -rf .gpu && mkdir -p .gpu
    for pat in 'parity-*' 'encoder-*' 'pipeline-*'; do
      f=$(ls -t target/cuda/release/deps/$pat | grep -v '\.d$' | head -1)
      name=$(basename "${pat%-\*}")
      strip --strip-debug -o ".gpu/$name" "$f" && gzip -f ".gpu/$name"   # the carry limit is 64 MiB
    done
    cp ../shared/cuda/peer_torch_vit.py .gpu/
    ls -la .gpu
    ;;
  run)
    export LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/usr/local/nvidia/lib64
    for b in parity encoder pipeline; do gunzip -c ".gpu/$b.gz" > "/tmp/$b" && chmod +x "/tmp/$b"; done
    nvidia-smi --query-gpu=name,memory.total --format=csv
    /tmp/parity --nocapture cuda_half_precision_matches_cpu_f32
    /tmp/encoder --bench cuda_bf16
    /tmp/pipeline --bench cuda_bf16
    python3 .gpu/peer_torch_vit.py fixtures/reference/ihc-full-l0-inside-frame.png
    ;;
  *) echo "usage: tools/gpu_check.sh build|run" >&2; exit 2 ;;
esac
