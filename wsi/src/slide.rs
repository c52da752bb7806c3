//! A slide: the instances of one series grouped into a resolution pyramid plus its associated
//! images (label, overview, thumbnail).

use crate::cache::{SlideCache, DEFAULT_CACHE_BYTES};
use crate::error::{Location, Result, WsiError};
use crate::frame_source::FrameSource;
use crate::image_info::{ImageFlavor, ImageInfo};
use crate::level::Level;
use crate::local_file::open_instance;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kind of an associated (non-pyramid) image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssociatedKind {
    /// The slide label.
    Label,
    /// The macro photograph of the glass.
    Overview,
    /// A small image of the tissue.
    Thumbnail,
}

impl AssociatedKind {
    /// Upper-case DICOM name: `LABEL`, `OVERVIEW`, `THUMBNAIL`.
    pub fn name(self) -> &'static str {
        match self {
            AssociatedKind::Label => "LABEL",
            AssociatedKind::Overview => "OVERVIEW",
            AssociatedKind::Thumbnail => "THUMBNAIL",
        }
    }
}

/// A label, overview or thumbnail image.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AssociatedImage {
    /// Which kind.
    pub kind: AssociatedKind,
    /// Its pixels, read like a level.
    pub image: Level,
}

/// Options for [`Slide::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Which series to open when the inputs hold more than one WSI series.
    pub series_instance_uid: Option<String>,
    /// Bytes of decoded tiles (for region reads) kept for the slide, over all its images
    /// (0 disables the cache). The streaming patch grid does not use it.
    pub cache_bytes: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { series_instance_uid: None, cache_bytes: DEFAULT_CACHE_BYTES }
    }
}

/// A whole-slide image: pyramid levels (largest first) and associated images.
#[derive(Debug, Clone)]
pub struct Slide {
    location: Location,
    study_instance_uid: String,
    series_instance_uid: String,
    levels: Vec<Level>,
    associated: Vec<AssociatedImage>,
    skipped: Vec<String>,
    warnings: Vec<String>,
}

/// One instance ready to be placed in a slide.
pub(crate) struct OpenedInstance {
    pub info: ImageInfo,
    pub frames: Arc<dyn FrameSource>,
}

impl Slide {
    /// Opens a slide from a folder of DICOM Part 10 files, or from one file. Reads headers only.
    pub fn open(path: impl AsRef<Path>) -> Result<Slide> {
        Slide::open_with(path, &OpenOptions::default())
    }

    /// Like [`Slide::open`], with options.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Slide> {
        let path = path.as_ref();
        let location = path.display().to_string();
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| WsiError::io(location.clone(), e))?
                .map(|entry| entry.map(|e| e.path()).map_err(|e| WsiError::io(location.clone(), e)))
                .collect::<Result<_>>()?;
            files.retain(|p| p.is_file());
            files.sort();
            // In a folder, files that are not WSI instances are skipped (and reported).
            let mut opened = Vec::new();
            let mut skipped = Vec::new();
            for file in &files {
                match open_instance(file) {
                    Ok((info, frames)) => opened.push(OpenedInstance { info, frames: Arc::new(frames) }),
                    Err(e @ (WsiError::NotDicom { .. } | WsiError::NotWsi { .. })) => skipped.push(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            Slide::assemble(location, opened, skipped, options, Arc::new(SlideCache::new(options.cache_bytes)))
        } else {
            Slide::open_files(&[path], options)
        }
    }

    // `Slide::open_dicomweb` is in dicomweb/open.rs (with the `dicomweb` feature): this file
    // does not import the DICOMweb side, which builds slides with `Slide::assemble`.

    /// Opens a slide from an explicit list of files; every file must be a WSI instance.
    pub fn open_files<P: AsRef<Path>>(files: &[P], options: &OpenOptions) -> Result<Slide> {
        let location = match files {
            [one] => one.as_ref().display().to_string(),
            _ => format!("{} files", files.len()),
        };
        let opened = files
            .iter()
            .map(|f| open_instance(f.as_ref()).map(|(info, frames)| OpenedInstance { info, frames: Arc::new(frames) as _ }))
            .collect::<Result<Vec<_>>>()?;
        Slide::assemble(location, opened, Vec::new(), options, Arc::new(SlideCache::new(options.cache_bytes)))
    }

    /// Groups instances by series, keeps the chosen series, sorts VOLUME images into levels,
    /// which keep their decoded tiles in `cache`.
    pub(crate) fn assemble(
        location: Location,
        instances: Vec<OpenedInstance>,
        skipped: Vec<String>,
        options: &OpenOptions,
        cache: Arc<SlideCache>,
    ) -> Result<Slide> {
        let no_slide = |problem: String| WsiError::NoSlide { location: location.clone(), problem };
        let mut series: BTreeMap<String, Vec<OpenedInstance>> = BTreeMap::new();
        for inst in instances {
            series.entry(inst.info.series_instance_uid.clone()).or_default().push(inst);
        }
        let chosen = match &options.series_instance_uid {
            Some(uid) => {
                series.remove(uid).ok_or_else(|| no_slide(format!("series {uid} not found; series present: {:?}", series.keys().collect::<Vec<_>>())))?
            }
            None if series.len() == 1 => series.into_values().next().unwrap(),
            None if series.is_empty() => {
                let why = if skipped.is_empty() { "no files".to_string() } else { skipped.join("; ") };
                return Err(no_slide(format!("no VL Whole Slide Microscopy instances ({why})")));
            }
            None => {
                return Err(no_slide(format!(
                    "several WSI series found, choose one (OpenOptions::series_instance_uid / --series): {}",
                    series.keys().cloned().collect::<Vec<_>>().join(", ")
                )))
            }
        };

        let study_instance_uid = chosen[0].info.study_instance_uid.clone();
        let series_instance_uid = chosen[0].info.series_instance_uid.clone();
        let mut volumes = Vec::new();
        let mut associated = Vec::new();
        let mut warnings = Vec::new();
        for inst in chosen {
            let kind = match &inst.info.flavor {
                ImageFlavor::Volume => None,
                ImageFlavor::Label => Some(AssociatedKind::Label),
                ImageFlavor::Overview => Some(AssociatedKind::Overview),
                ImageFlavor::Thumbnail => Some(AssociatedKind::Thumbnail),
                ImageFlavor::Other(other) => {
                    warnings.push(format!("{}: ImageType flavour {other} ignored", inst.info.location));
                    continue;
                }
            };
            match kind {
                None => volumes.push(inst),
                Some(kind) => {
                    let index = associated.len();
                    let image = Level::with_cache(index, inst.info, inst.frames, cache.clone())?;
                    associated.push(AssociatedImage { kind, image });
                }
            }
        }
        // Largest first; equal sizes (another focal plane or optical path, or a concatenation)
        // keep the first by SOP Instance UID and are reported.
        volumes.sort_by(|a, b| {
            (u64::from(b.info.width) * u64::from(b.info.height))
                .cmp(&(u64::from(a.info.width) * u64::from(a.info.height)))
                .then_with(|| a.info.sop_instance_uid.cmp(&b.info.sop_instance_uid))
        });
        let mut levels: Vec<Level> = Vec::new();
        for inst in volumes {
            if let Some(prev) = levels.last() {
                if prev.width() == inst.info.width && prev.height() == inst.info.height {
                    warnings.push(format!(
                        "{}: second VOLUME instance of {}x{} ignored (other focal plane, optical path or concatenation)",
                        inst.info.location, inst.info.width, inst.info.height
                    ));
                    continue;
                }
            }
            let index = levels.len();
            levels.push(Level::with_cache(index, inst.info, inst.frames, cache.clone())?);
        }
        if levels.is_empty() {
            return Err(no_slide(format!("series {series_instance_uid} has no VOLUME images (ImageType value 3)")));
        }
        for level in &levels {
            warnings.extend(level.info().warnings.iter().map(|w| format!("{}: {w}", level.info().location)));
        }
        Ok(Slide { location, study_instance_uid, series_instance_uid, levels, associated, skipped, warnings })
    }

    /// Folder, file or URL the slide was opened from.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Study Instance UID.
    pub fn study_instance_uid(&self) -> &str {
        &self.study_instance_uid
    }

    /// Series Instance UID: the slide's identity.
    pub fn series_instance_uid(&self) -> &str {
        &self.series_instance_uid
    }

    /// Pyramid levels, largest first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// Level `index`, or an error listing the levels there are.
    pub fn level(&self, index: usize) -> Result<&Level> {
        self.levels
            .get(index)
            .ok_or_else(|| WsiError::InvalidArgument(format!("level {index} does not exist: the slide has levels 0..={}", self.levels.len() - 1)))
    }

    /// The level whose µm/px is closest to `mpp` (compared on a log scale, so 2× too coarse and
    /// 2× too fine count the same). Errors when no level declares a spacing.
    pub fn level_for_mpp(&self, mpp: f64) -> Result<&Level> {
        if !(mpp.is_finite() && mpp > 0.0) {
            return Err(WsiError::InvalidArgument(format!("µm/px must be positive, got {mpp}")));
        }
        self.levels
            .iter()
            .filter_map(|l| l.mpp().map(|m| (l, (m / mpp).ln().abs())))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| l)
            .ok_or_else(|| WsiError::InvalidArgument("no level of this slide declares a pixel spacing".into()))
    }

    /// Label, overview and thumbnail images.
    pub fn associated(&self) -> &[AssociatedImage] {
        &self.associated
    }

    /// The first associated image of a kind.
    pub fn associated_image(&self, kind: AssociatedKind) -> Option<&AssociatedImage> {
        self.associated.iter().find(|a| a.kind == kind)
    }

    /// Files in the folder that were not WSI instances, with the reason.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Inconsistencies found and worked around while opening.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
