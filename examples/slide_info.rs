//! Prints what a DICOM whole-slide image holds: levels with size, frame size, frame count, pixel
//! spacing, transfer syntax and frame organisation, and its associated images.
//!
//! `cargo run --release --example slide_info -- <slide folder or file> [--json]`

#[path = "common/args.rs"]
mod args;

use clap::Parser;
use haidef_wsi::wsi::{transfer_syntax_name, Level};
use serde_json::json;

/// What a DICOM whole-slide image holds: levels, frames, spacing, transfer syntax, associated images.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    slide: args::SlideArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn level_json(level: &Level) -> serde_json::Value {
    let info = level.info();
    json!({
        "index": level.index(),
        "width": level.width(),
        "height": level.height(),
        "tile_width": info.tile_width,
        "tile_height": info.tile_height,
        "frames": info.number_of_frames,
        "missing_tiles": level.missing_tiles(),
        "mpp": level.mpp(),
        "pixel_spacing_mm": info.pixel_spacing_mm.map(|(r, c)| [r, c]),
        "transfer_syntax": info.transfer_syntax,
        "transfer_syntax_name": transfer_syntax_name(&info.transfer_syntax),
        "photometric": info.photometric,
        "organization": info.organization.name(),
        "file": info.location,
    })
}

fn main() {
    let cli = Cli::parse();
    let slide = args::open_slide(&cli.slide).unwrap_or_else(|e| args::exit_with(e));
    if cli.json {
        let doc = json!({
            "location": slide.location(),
            "study_instance_uid": slide.study_instance_uid(),
            "series_instance_uid": slide.series_instance_uid(),
            "levels": slide.levels().iter().map(level_json).collect::<Vec<_>>(),
            "associated": slide.associated().iter().map(|a| {
                let mut v = level_json(&a.image);
                v["kind"] = json!(a.kind.name());
                v
            }).collect::<Vec<_>>(),
            "skipped": slide.skipped(),
            "warnings": slide.warnings(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        return;
    }
    println!("slide     {}", slide.location());
    println!("study     {}", slide.study_instance_uid());
    println!("series    {}", slide.series_instance_uid());
    println!();
    println!("{:>5} {:>13} {:>9} {:>7} {:>8}  {:<26} organisation", "level", "size", "frame", "frames", "µm/px", "transfer syntax");
    for level in slide.levels() {
        let info = level.info();
        let mpp = level.mpp().map(|m| format!("{m:.4}")).unwrap_or_else(|| "-".into());
        let missing = match level.missing_tiles() {
            0 => String::new(),
            n => format!(", {n} tiles absent"),
        };
        println!(
            "{:>5} {:>13} {:>9} {:>7} {:>8}  {:<26} {}{}",
            level.index(),
            format!("{}x{}", level.width(), level.height()),
            format!("{}x{}", info.tile_width, info.tile_height),
            info.number_of_frames,
            mpp,
            transfer_syntax_name(&info.transfer_syntax),
            info.organization.name(),
            missing
        );
    }
    if !slide.associated().is_empty() {
        println!();
        for a in slide.associated() {
            println!("{:<10} {}x{}  {}", a.kind.name(), a.image.width(), a.image.height(), a.image.info().location);
        }
    }
    for w in slide.warnings() {
        println!("warning: {w}");
    }
    for s in slide.skipped() {
        println!("skipped: {s}");
    }
}
