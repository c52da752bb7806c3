//! Where a cohort stands: each manifest row done, failed or missing, and the embeddings/hour of
//! the finished slides.
//!
//! `cargo run --release --example cohort_status -- DIR manifest.csv [--verify] [--all]`
//!
//! Exit status 0 when every slide is done, 1 otherwise.

use clap::Parser;
use haidef_wsi::cohort::{CohortStatus, Manifest, SlideState};
use std::path::PathBuf;

/// Report a cohort folder's progress against its manifest.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The cohort folder (embed_cohort's --out).
    dir: PathBuf,
    /// The cohort manifest.
    manifest: PathBuf,
    /// Check each finished file's SHA-256 against its record (reads every file) instead of its size.
    #[arg(long)]
    verify: bool,
    /// List every slide, not only those not done.
    #[arg(long)]
    all: bool,
}

fn run(cli: &Cli) -> Result<bool, Box<dyn std::error::Error>> {
    let manifest = Manifest::open(&cli.manifest)?;
    let status = CohortStatus::read(&cli.dir, &manifest, cli.verify)?;
    println!("{:<6} {:<8} {:<40} {:>8} {:>16}  path / error", "line", "state", "slide_id", "patches", "embeddings/h");
    for (row, state) in &status.slides {
        let id = row.slide_id.as_deref().unwrap_or("-");
        match state {
            SlideState::Done(r) if cli.all => println!("{:<6} {:<8} {:<40} {:>8} {:>16.0}  {}", row.line, "done", r.slide_id, r.rows, r.per_hour(), row.path),
            SlideState::Done(_) => {}
            SlideState::Damaged(r, why) => {
                println!("{:<6} {:<8} {:<40} {:>8} {:>16}  {} ({why}; the next run redoes it)", row.line, "damaged", r.slide_id, r.rows, "", row.path)
            }
            SlideState::Failed(f) => println!(
                "{:<6} {:<8} {:<40} {:>8} {:>16}  {}: {} (attempts: {}, shard {})",
                row.line,
                "failed",
                f.slide_id.as_deref().unwrap_or(id),
                "",
                "",
                row.path,
                f.error,
                f.attempts,
                f.shard
            ),
            SlideState::Missing => println!("{:<6} {:<8} {:<40} {:>8} {:>16}  {}", row.line, "missing", id, "", "", row.path),
        }
    }
    let rows: usize = status.done().map(|r| r.rows).sum();
    let (unreadable, in_slides) = status.done().filter(|r| r.unreadable > 0).fold((0, 0), |(n, s), r| (n + r.unreadable, s + 1));
    println!(
        "{} slides: {} done, {} failed, {} missing, {} damaged; shards: {}; {rows} patches embedded{}",
        status.slides.len(),
        status.count("done"),
        status.count("failed"),
        status.count("missing"),
        status.count("damaged"),
        status.shards,
        if unreadable > 0 {
            format!(", {unreadable} left out over broken frames in {in_slides} slides (each slide's Parquet metadata lists them: unreadable_patches)")
        } else {
            String::new()
        }
    );
    if let Some((per_task, overall)) = status.per_hour() {
        println!("throughput: {per_task:.0} embeddings/hour per task (busy time), {overall:.0} embeddings/hour for the cohort (first start to last finish)");
    }
    if !status.extra.is_empty() {
        let ids: Vec<&str> = status.extra.iter().map(|r| r.slide_id.as_str()).collect();
        println!("{} finished slides are not in this manifest: {}", ids.len(), ids.join(", "));
    }
    if !status.staging.is_empty() {
        println!("in progress or interrupted (staging/): {}", status.staging.join(", "));
    }
    Ok(status.complete())
}

fn main() {
    match run(&Cli::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}
