//! The slide job's after-step for prompts: one picture per prompt, `score-<n>-<prompt>.png`,
//! the thumbnail with each embedded patch coloured by that prompt's score (see
//! the job's zero-shot scores).

use crate::error::Result;
use crate::maps::clusters::Layout;
use crate::maps::render::{render_score_map, Cell};
use crate::output::atomic::write_png;
use std::path::{Path, PathBuf};

/// A file name for prompt number `n` (1-based): lower-case letters and digits of the prompt,
/// other characters as `-`, at most 40 of them.
pub(crate) fn file_name(n: usize, prompt: &str) -> String {
    let mut slug: String = prompt.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect();
    slug = slug.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-");
    let slug: String = slug.chars().take(40).collect();
    format!("score-{n}-{slug}.png")
}

/// Draws each prompt's score map into `out_dir` (written atomically); returns the files.
/// `positions` are the patches' top-left corners in level pixels.
pub(crate) fn draw_score_maps(prompts: &[String], scores: &[Vec<f32>], positions: &[(u32, u32)], layout: &Layout<'_>, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let cells: Vec<Cell> = positions.iter().map(|&(x, y)| Cell { x, y, size: layout.patch, label: 0 }).collect();
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
        for n in 1..4 {
            assert!(crate::zero_shot::is_score_map_name(&super::file_name(n, "Tumor / stroma")));
        }
    }
}
