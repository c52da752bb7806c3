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
    (source ../shared/cuda/env.sh && cargo test --release --features cuda -p haidef-wsi-encoders --test parity --test preprocess --test siglip_model --test resnetv2 --no-run \
       && cargo bench --features cuda --bench encoder --no-run && cargo bench --features cuda --bench pipeline --no-run \
       && cargo bench --features cuda --bench siglip --no-run \
       && cargo test --release --features cuda --test audio --no-run && cargo bench --features cuda --bench hear --no-run \
       && cargo bench --features cuda --bench serve_load --no-run && cargo bench --features cuda --bench cohort_throughput --no-run \
       && cargo test --release --features cuda --test probe --no-run)
    rm -rf .gpu && mkdir -p .gpu
    for pat in 'parity-*' 'resnetv2-*' 'preprocess-*' 'encoder-*' 'pipeline-*' 'siglip_model-*' 'siglip-*' 'audio-*' 'hear-*' 'serve_load-*' 'cohort_throughput-*' 'probe-*'; do
      f=$(ls -t target/cuda/release/deps/$pat | grep -v '\.d$' | head -1)
      name=$(basename "${pat%-\*}")
      strip --strip-debug -o ".gpu/$name" "$f" && gzip -f ".gpu/$name"   # the carry limit is 64 MiB
    done
    cp ../shared/cuda/peer_torch_vit.py .gpu/
    # wsidicom and its pure-Python dependencies for the Python pipeline peer (the device has
    # PyTorch, timm, numpy and Pillow but no internet).
    sp=$(~/.venvs/torch-cpu/bin/python -c "import site; print(site.getsitepackages()[0])")
    # (Checked here with `python3 -S` and only numpy + Pillow beside it.)
    pkgs="wsidicom pydicom cachetools dicomweb_client fsspec marshmallow upath retrying.py requests urllib3 idna certifi charset_normalizer"
    dists="wsidicom pydicom cachetools dicomweb_client fsspec marshmallow universal_pathlib retrying requests urllib3 idna certifi charset_normalizer"
    (cd "$sp" && tar -czf "$OLDPWD/.gpu/pylib.tar.gz" --exclude='__pycache__' --exclude='pydicom/data/test_files' \
      $pkgs $(for d in $dists; do ls -d "$d"-*.dist-info; done))
    ls -la .gpu
    ;;
  run)
    export LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/usr/local/nvidia/lib64
    for b in parity resnetv2 preprocess encoder pipeline siglip_model siglip audio hear serve_load cohort_throughput probe; do gunzip -c ".gpu/$b.gz" > "/tmp/$b" && chmod +x "/tmp/$b"; done
    nvidia-smi --query-gpu=name,memory.total --format=csv
    /tmp/parity --nocapture cuda_half_precision_matches_cpu_f32
    /tmp/preprocess --nocapture cuda_packing_matches_cpu
    # BiT-M R101x3 (Derm Foundation's architecture): CUDA f32 against timm, bf16/f16 against f32.
    /tmp/resnetv2 --nocapture cuda_bit_101x3_matches_timm
    /tmp/encoder --bench cuda_bf16
    # MedSigLIP towers: CUDA f32 / bf16 against transformers' features, then full-depth bf16 speed.
    /tmp/siglip_model --nocapture cuda_matches_transformers
    /tmp/siglip --bench cuda_bf16
    # Attention MIL on CUDA: forward against PyTorch, and training on the bags of digits.
    /tmp/probe --nocapture cuda_mil_matches_pytorch_and_learns
    # HeAR: the front end's matrix form and the model on CUDA against the references, then
    # front end alone and full model (bf16, batch 256) speed.
    /tmp/audio --nocapture cuda_matches_the_reference
    /tmp/hear --bench hear_cuda
    # The fixture (88 patches), then a 160x128-frame slide tiled from it (~26,600 patches).
    HAIDEF_BENCH_TILED=160x128 /tmp/pipeline --bench cuda_bf16
    python3 .gpu/peer_torch_vit.py fixtures/reference/ihc-full-l0-inside-frame.png
    # The Python pipeline on the same tiled slide (built by the pipeline bench above).
    mkdir -p /tmp/pylib && tar -xzf .gpu/pylib.tar.gz -C /tmp/pylib
    PYTHONPATH=/tmp/pylib python3 benches/peers/python_pipeline.py /tmp/haidef-tiled-160x128 \
      --device cuda --bf16 --batch 256 --threads 16 --repeat 1
    # The server under the report's load (10 clients × 5,000 patches, bf16, batch 256); the
    # DICOMweb half needs Orthanc, which the device lacks (the bench says so), so inline images.
    HAIDEF_DEVICE=cuda HAIDEF_LOAD_DTYPE=bf16 HAIDEF_LOAD_PATCHES=5000 /tmp/serve_load
    # A cohort (4 slides of 40x40 frames, 2,025 patches each) against the single-slide pipeline.
    HAIDEF_DEVICE=cuda HAIDEF_COHORT_FRAMES=40 /tmp/cohort_throughput
    ;;
  *) echo "usage: tools/gpu_check.sh build|run" >&2; exit 2 ;;
esac
