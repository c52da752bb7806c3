//! Reads one rectangle of one level of a DICOM whole-slide image and writes it as PNG.
//!
//! `cargo run --release --example extract_patch -- <slide> --level L --x X --y Y --width W --height H --out patch.png [--pad]`

#[path = "common/args.rs"]
mod args;

use haidef_wsi::wsi::OutOfBounds;
use std::io::BufWriter;

const USAGE: &str = "usage: extract_patch <slide folder, file or DICOMweb series/study URL> [--bearer-token T | --basic-auth user:pass] [--ca-cert ca.pem] --level L --x X --y Y --width W --height H --out patch.png [--pad] [--series UID]\n\
  --pad   fill the part of the rectangle outside the level with white instead of failing";

fn run(args: &args::Args) -> Result<String, Box<dyn std::error::Error>> {
    let slide = args::open_slide(args)?;
    let level = slide.level(args.required("level"))?;
    let (x, y): (i64, i64) = (args.required("x"), args.required("y"));
    let (w, h): (u32, u32) = (args.required("width"), args.required("height"));
    let out: String = args.required("out");
    let policy = if args.switch("pad") { OutOfBounds::PadWhite } else { OutOfBounds::Error };
    let region = level.read_region_with(x, y, w, h, policy)?;
    let file = std::fs::File::create(&out).map_err(|e| format!("{out}: {e}"))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), region.width, region.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&region.data)?;
    Ok(format!("wrote {out}: level {} region x={x} y={y} {w}x{h}", level.index()))
}

fn main() {
    let args = args::Args::parse(USAGE, &["pad"]);
    match run(&args) {
        Ok(msg) => println!("{msg}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
