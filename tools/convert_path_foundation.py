#!/usr/bin/env python3
"""Convert Google's Path Foundation (TensorFlow SavedModel) to .safetensors with timm names.

    pip install tensorflow numpy safetensors timm torch      # timm/torch only for --verify
    python3 tools/convert_path_foundation.py PATH/TO/saved_model out/path_foundation.safetensors --verify

The weights are licence-gated on Hugging Face (google/path-foundation): accept the terms there
and download the SavedModel folder yourself; this script never downloads anything.

STATUS: this script has NOT been run against the real Path Foundation weights (the project's
machines cannot reach the gated download). It is written from the architecture (ViT-S/16:
width 384, depth 12, 6 heads, MLP 1536, qkv bias, LayerNorm eps 1e-6, class token) and from the
usual ways Keras stores ViT variables. Always run it with --verify: it feeds the same random
patches through the SavedModel and through timm's ViT-S/16 loaded with the converted tensors and
fails unless every embedding agrees (cosine >= 0.9999). If the mapping below does not fit the
variables it finds, it stops and prints them; adjust `map_variables` to the names printed.

Output tensor names and layouts are those of timm `vit_small_patch16_224` `state_dict()`:
cls_token (1,1,384), pos_embed (1,197,384), patch_embed.proj.weight (384,3,16,16) and .bias,
blocks.{i}.norm1/norm2.{weight,bias}, blocks.{i}.attn.qkv.weight (1152,384) and .bias,
blocks.{i}.attn.proj.{weight,bias}, blocks.{i}.mlp.fc1/fc2.{weight,bias}, norm.{weight,bias}.
haidef-wsi loads this file with `--weights out/path_foundation.safetensors`.
"""
import argparse
import re
import sys

import numpy as np

DEPTH, WIDTH, HEADS, MLP, PATCH, TOKENS = 12, 384, 6, 1536, 16, 197


def natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def map_variables(variables):
    """SavedModel variables {name: array} -> timm state dict {name: array}.

    Variables are grouped by role from their shapes and names, in the order the model declares
    them, which for Keras ViTs is embedding, blocks 0..11, final norm."""
    names = sorted(variables, key=natural_key)
    out = {}

    def take(pred, what):
        for n in names:
            if n not in used and pred(n, variables[n]):
                used.add(n)
                return variables[n]
        raise KeyError(f"no variable for {what}")

    used = set()
    out["patch_embed.proj.weight"] = take(lambda n, v: v.shape == (PATCH, PATCH, 3, WIDTH), "patch kernel").transpose(3, 2, 0, 1)
    out["patch_embed.proj.bias"] = take(lambda n, v: v.shape == (WIDTH,) and ("embed" in n or "patch" in n or "conv" in n), "patch bias")
    out["cls_token"] = take(lambda n, v: v.size == WIDTH and v.ndim == 3, "class token").reshape(1, 1, WIDTH)
    out["pos_embed"] = take(lambda n, v: v.shape[-2:] == (TOKENS, WIDTH), "position embedding").reshape(1, TOKENS, WIDTH)

    # Blocks: collect variables whose name mentions the block index.
    for i in range(DEPTH):
        block = [n for n in names if n not in used and re.search(rf"(?:block|layer|encoderblock)[_/]?{i}(?!\d)", n)]
        if not block:
            raise KeyError(f"no variables for block {i}")
        get = lambda pat, shape: pick(variables, block, used, pat, shape, i)
        out[f"blocks.{i}.norm1.weight"] = get(r"(norm|ln)[_/]?(1|0|before)?.*(gamma|scale)", (WIDTH,))
        out[f"blocks.{i}.norm1.bias"] = get(r"(norm|ln)[_/]?(1|0|before)?.*beta", (WIDTH,))
        q = get(r"query.*kernel", None).reshape(WIDTH, WIDTH)
        k = get(r"key.*kernel", None).reshape(WIDTH, WIDTH)
        v = get(r"value.*kernel", None).reshape(WIDTH, WIDTH)
        out[f"blocks.{i}.attn.qkv.weight"] = np.concatenate([q.T, k.T, v.T], axis=0)
        qb = get(r"query.*bias", None).reshape(WIDTH)
        kb = get(r"key.*bias", None).reshape(WIDTH)
        vb = get(r"value.*bias", None).reshape(WIDTH)
        out[f"blocks.{i}.attn.qkv.bias"] = np.concatenate([qb, kb, vb])
        out[f"blocks.{i}.attn.proj.weight"] = get(r"(attention_output|out|proj).*kernel", None).reshape(WIDTH, WIDTH).T
        out[f"blocks.{i}.attn.proj.bias"] = get(r"(attention_output|out|proj).*bias", (WIDTH,))
        out[f"blocks.{i}.norm2.weight"] = get(r"(norm|ln).*(gamma|scale)", (WIDTH,))
        out[f"blocks.{i}.norm2.bias"] = get(r"(norm|ln).*beta", (WIDTH,))
        out[f"blocks.{i}.mlp.fc1.weight"] = get(r"kernel", (WIDTH, MLP)).T
        out[f"blocks.{i}.mlp.fc1.bias"] = get(r"bias", (MLP,))
        out[f"blocks.{i}.mlp.fc2.weight"] = get(r"kernel", (MLP, WIDTH)).T
        out[f"blocks.{i}.mlp.fc2.bias"] = get(r"bias", (WIDTH,))
    out["norm.weight"] = take(lambda n, v: v.shape == (WIDTH,) and re.search("gamma|scale", n) is not None, "final norm scale")
    out["norm.bias"] = take(lambda n, v: v.shape == (WIDTH,) and "beta" in n, "final norm bias")
    left = [n for n in names if n not in used]
    if left:
        print(f"note: {len(left)} variables not used: {left[:10]}", file=sys.stderr)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def pick(variables, block, used, pattern, shape, i):
    for n in block:
        if n in used:
            continue
        v = variables[n]
        if re.search(pattern, n.lower()) and (shape is None or v.shape == shape):
            used.add(n)
            return v
    raise KeyError(f"block {i}: no variable matching /{pattern}/ with shape {shape}; block variables: {block}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("saved_model")
    ap.add_argument("out")
    ap.add_argument("--verify", action="store_true", help="compare the SavedModel and timm on random patches")
    args = ap.parse_args()

    import tensorflow as tf
    from safetensors.numpy import save_file

    model = tf.saved_model.load(args.saved_model)
    variables = {v.name: v.numpy() for v in model.variables}
    print(f"{len(variables)} variables, {sum(v.size for v in variables.values()):,} values")
    try:
        state = map_variables(variables)
    except KeyError as e:
        for n in sorted(variables, key=natural_key):
            print(f"  {n} {variables[n].shape}")
        sys.exit(f"cannot map the variables above to ViT-S/16: {e}")
    save_file(state, args.out)
    print(f"wrote {args.out}: {len(state)} tensors")

    if args.verify:
        import timm
        import torch

        vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).eval()
        vit.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(8, 224, 224, 3)).astype(np.float32) / 255.0
        serve = model.signatures["serving_default"]
        tf_out = list(serve(tf.constant(x)).values())[0].numpy().reshape(8, -1)
        with torch.inference_mode():
            ours = vit(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
        cos = (tf_out * ours).sum(1) / np.linalg.norm(tf_out, axis=1) / np.linalg.norm(ours, axis=1)
        print(f"cosine SavedModel vs converted: min {cos.min():.6f}")
        if cos.min() < 0.9999:
            sys.exit("verification FAILED: the converted weights do not reproduce the SavedModel")
        print("verification passed")


if __name__ == "__main__":
    main()
