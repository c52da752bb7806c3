"""The README's slide-level picture (docs/probe_bags.png): test bags of digits beside the MIL
attention maps that `predict_probe` drew for them.

Each "slide" of fixtures/probes/digit_bags.parquet is 16 of scikit-learn's 8x8 digits on a 4 x 4
grid, and its embedding rows are the digits' pixels, so the digits can be drawn back from the
file. Run after the README's slide-level example:

  PY=python3 (with numpy, pyarrow, pillow)
  $PY tools/draw_probe_bags.py target/bags target/bags/predictions.parquet docs/probe_bags.png bag-006 bag-022 bag-011
"""
import os
import sys

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

CELL = 56  # pixels per grid cell: the 8 x 8 digit scaled by 6 and a white margin
GAP = 16


def digits_grid(table, slide):
    d = table.to_pydict()
    img = np.full((4 * CELL, 4 * CELL), 255, np.uint8)
    for s, x, y, e in zip(d["slide_id"], d["x"], d["y"], d["embedding"]):
        if s != slide:
            continue
        cell = (255 - np.array(e, np.float32).reshape(8, 8) * 255 / 16).astype(np.uint8)
        r, c = y // 224, x // 224
        img[r * CELL + 4:r * CELL + 52, c * CELL + 4:c * CELL + 52] = np.kron(cell, np.ones((6, 6), np.uint8))
    return Image.fromarray(img).convert("RGB")


def main():
    model_dir, predictions, out, slides = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    emb = pq.read_table("fixtures/probes/digit_bags.parquet")
    pred = pq.read_table(predictions).to_pydict()
    p_mil = dict(zip(pred["slide_id"], pred["mil_p_has_nine"]))
    p_lin = dict(zip(pred["slide_id"], pred["p_has_nine"]))
    labels = dict(line.strip().split(",")[:2] for line in open("fixtures/probes/digit_bags_labels.csv").readlines()[1:])
    stem = os.path.splitext(os.path.basename(predictions))[0]
    side = 4 * CELL
    caption = 50
    canvas = Image.new("RGB", (len(slides) * (2 * side + GAP) + (len(slides) - 1) * 2 * GAP, side + caption), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    for i, s in enumerate(slides):
        x0 = i * (2 * side + 3 * GAP)
        canvas.paste(digits_grid(emb, s), (x0, 0))
        att = Image.open(os.path.join(os.path.dirname(predictions), f"{stem}-{s}-attention.png")).convert("RGB")
        canvas.paste(att.resize((side, side), Image.NEAREST), (x0 + side + GAP, 0))
        draw.text((x0, side + 6), f"{s}: {labels[s]} (test split)", fill="black", font=font)
        draw.text((x0, side + 24), f"p(has_nine): MIL {p_mil[s]:.3f}, mean-pooled linear {p_lin[s]:.3f}", fill="black", font=font)
    canvas.save(out)
    print(f"wrote {out} from {model_dir} and {predictions}")


if __name__ == "__main__":
    main()
