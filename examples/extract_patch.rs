//! Reads one rectangle of one level of a DICOM whole-slide image and writes it as PNG.
//!
//! `cargo run --release --example extract_patch -- <slide> --level L --x X --y Y --width W --height H --out patch.png [--pad]`

#[path = "common/args.rs"]
mod args;

use clap::Parser;
use haidef_wsi::wsi::OutOfBounds;
use std::io::BufWriter;

/// Write one rectangle of one level of a slide as PNG.
#[derive(Parser, Debug)]
#[command(version, allow_negative_numbers = true)]
struct Cli {
    #[command(flatten)]
    slide: args::SlideArgs,
    /// Pyramid level (0 = full resolution).
    #[arg(long)]
    level: usize,
    /// Left edge in level pixels (may be negative with --pad).
    #[arg(long)]
    x: i64,
    /// Top edge in level pixels (may be negative with --pad).
    #[arg(long)]
    y: i64,
    /// Width in pixels.
    #[arg(long)]
    width: u32,
    /// Height in pixels.
    #[arg(long)]
    height: u32,
    /// The PNG file to write.
    #[arg(long)]
    out: String,
    /// Fill the part of the rectangle outside the level with white instead of failing.
    #[arg(long)]
    pad: bool,
}

fn run(cli: &Cli) -> Result<String, Box<dyn std::error::Error>> {
    let slide = args::open_slide(&cli.slide)?;
    let level = slide.level(cli.level)?;
    let (x, y, w, h, out) = (cli.x, cli.y, cli.width, cli.height, &cli.out);
    let policy = if cli.pad { OutOfBounds::PadWhite } else { OutOfBounds::Error };
    let region = level.read_region_with(x, y, w, h, policy)?;
    let file = std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), region.width, region.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&region.data)?;
    Ok(format!("wrote {out}: level {} region x={x} y={y} {w}x{h}", level.index()))
}

fn main() {
    match run(&Cli::parse()) {
        Ok(msg) => println!("{msg}"),
        Err(e) => args::exit_with(e),
    }
}
