//! The slide job's after-step for prompts: one picture per prompt, `score-<n>-<prompt>.png`,
//! the thumbnail with each embedded patch coloured by that prompt's score (see
//! [`crate::zero_shot`]).

use crate::atomic::write_png;
use crate::cluster_maps::Layout;
use crate::error::Result;
use crate::heatmap::{render_score_map, Cell};
use crate::sink::PatchRecord;
use std::path::{Path, PathBuf};

/// A file name for prompt number `n` (1-based): lower-case letters and digits of the prompt,
/// other characters as `-`, at most 40 of them.
pub fn file_name(n: usize, prompt: &str) -> String {
    let mut slug: String = prompt.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect();
    slug = slug.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-");
    let slug: String = slug.chars().take(40).collect();
    format!("score-{n}-{slug}.png")
}

/// Whether `name` is one of [`file_name`]'s: `score-<digits>-<slug>.png`.
pub fn is_file_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("score-").and_then(|r| r.strip_suffix(".png")) else { return false };
    let (n, slug) = rest.split_once('-').unwrap_or((rest, ""));
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && slug.chars().all(|c| c.is_alphanumeric() || c == '-')
}

/// Draws each prompt's score map into `out_dir` (written atomically); returns the files.
pub fn draw_score_maps(prompts: &[String], scores: &[Vec<f32>], records: &[PatchRecord], layout: &Layout<'_>, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let cells: Vec<Cell> = records.iter().map(|r| Cell { x: r.x, y: r.y, size: layout.patch, label: 0 }).collect();
    prompts
        .iter()
        .zip(scores)
        .enumerate()
        .map(|(i, (prompt, values))| {
            let img = render_score_map(layout.thumb, layout.level_size, &cells, values);
            write_png(&out_dir.join(file_name(i + 1, prompt)), img.width, img.height, &img.data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_tame() {
        assert_eq!(super::file_name(1, "Tumor"), "score-1-tumor.png");
        assert_eq!(super::file_name(2, "normal  tissue / stroma!"), "score-2-normal-tissue-stroma.png");
        assert_eq!(super::file_name(3, "../../etc"), "score-3-etc.png");
        for n in ["score-1-tumor.png", "score-12-normal-tissue.png", "score-3-.png"] {
            assert!(super::is_file_name(n), "{n}");
        }
        for n in ["score-summary.png", "score--x.png", "score-1-a b.png", "score-1-tumor.jpg", "heatmap.png"] {
            assert!(!super::is_file_name(n), "{n}");
        }
    }
}
