//! What one DICOM WSI instance says about itself: identity, geometry, pixel format, spacing and
//! how its frames are organised. Built from a dataset without its pixel data, so the same code
//! serves local files and DICOMweb metadata alike.

use crate::attrs::Attrs;
use crate::error::{Location, Result, WsiError};
use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// SOP Class UID of VL Whole Slide Microscopy Image Storage.
pub(crate) const WSI_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.77.1.6";

/// The role an image plays in a slide, from ImageType value 3.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageFlavor {
    /// A pyramid level.
    Volume,
    /// The slide label (barcode, text).
    Label,
    /// A macro photograph of the whole glass slide.
    Overview,
    /// A small downsampled image of the tissue.
    Thumbnail,
    /// Any other value, kept verbatim.
    Other(String),
}

impl ImageFlavor {
    fn from_image_type(values: &[String]) -> Self {
        match values.get(2).map(|s| s.to_ascii_uppercase()).as_deref() {
            Some("VOLUME") => ImageFlavor::Volume,
            Some("LABEL") => ImageFlavor::Label,
            Some("OVERVIEW") => ImageFlavor::Overview,
            Some("THUMBNAIL") => ImageFlavor::Thumbnail,
            Some(other) => ImageFlavor::Other(other.to_string()),
            // Without a flavour a multi-frame tiled image is most plausibly a level.
            None => ImageFlavor::Volume,
        }
    }
}

/// How frames map to tile positions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Organization {
    /// Frames fill the tile grid row by row (DimensionOrganizationType TILED_FULL).
    TiledFull,
    /// Each frame carries its position (PerFrameFunctionalGroupsSequence → PlanePositionSlide).
    /// Positions are 1-based (column, row) in the total pixel matrix, one per frame.
    PerFramePositions(Vec<(i64, i64)>),
}

impl Organization {
    /// Short name for display: `TILED_FULL` or `TILED_SPARSE` (per-frame positions).
    pub fn name(&self) -> &'static str {
        match self {
            Organization::TiledFull => "TILED_FULL",
            Organization::PerFramePositions(_) => "TILED_SPARSE (per-frame positions)",
        }
    }
}

/// Everything the reader needs to know about one instance, taken from its metadata.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImageInfo {
    /// File path or URL the instance came from.
    pub location: Location,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Series Instance UID: instances of one slide share it.
    pub series_instance_uid: String,
    /// ImageType values, e.g. `ORIGINAL\PRIMARY\VOLUME\NONE`.
    pub image_type: Vec<String>,
    /// Role of this image in the slide.
    pub flavor: ImageFlavor,
    /// Transfer syntax UID of the stored pixel data.
    pub transfer_syntax: String,
    /// Width of the whole image (TotalPixelMatrixColumns, or Columns for untiled images).
    pub width: u32,
    /// Height of the whole image (TotalPixelMatrixRows, or Rows).
    pub height: u32,
    /// Frame (tile) width: Columns.
    pub tile_width: u32,
    /// Frame (tile) height: Rows.
    pub tile_height: u32,
    /// NumberOfFrames (1 when absent).
    pub number_of_frames: u32,
    /// SamplesPerPixel.
    pub samples_per_pixel: u16,
    /// PhotometricInterpretation, e.g. `YBR_FULL_422`, `RGB`, `MONOCHROME2`.
    pub photometric: String,
    /// BitsAllocated.
    pub bits_allocated: u16,
    /// PlanarConfiguration (0 interleaved, 1 planar) for colour native data.
    pub planar_configuration: u16,
    /// Focal planes in the total pixel matrix (1 when absent).
    pub focal_planes: u32,
    /// Optical paths (1 when absent).
    pub optical_paths: u32,
    /// Pixel spacing in mm as (row spacing = vertical, column spacing = horizontal), after the
    /// consistency check against ImagedVolumeWidth/Height; `None` if the file gives none.
    pub pixel_spacing_mm: Option<(f64, f64)>,
    /// How frames are placed on the tile grid.
    pub organization: Organization,
    /// Extended Offset Table: (offsets, lengths) of each frame, when present.
    pub extended_offset_table: Option<(Vec<u64>, Vec<u64>)>,
    /// ICC profile of the first optical path, when present in the metadata.
    pub icc_profile: Option<Vec<u8>>,
    /// Why the ICC profile the metadata points at (a DICOMweb BulkDataURI) could not be
    /// fetched; None when there was none to fetch or it was fetched. Colour conversion of such
    /// an image must fail rather than be skipped.
    pub icc_profile_error: Option<std::sync::Arc<crate::error::WsiError>>,
    /// Things that looked wrong but were worked around, in words.
    pub warnings: Vec<String>,
}

/// The most pixels one frame may have (2^28, 768 MiB as RGB8): a frame is decoded whole.
pub(crate) const MAX_FRAME_PIXELS: u64 = 1 << 28;

impl ImageInfo {
    /// Reads the metadata of a WSI instance. `transfer_syntax` comes from the file meta group (or
    /// the DICOMweb response). Fails with [`WsiError::NotWsi`] for other SOP classes.
    pub fn from_dataset(obj: &InMemDicomObject, transfer_syntax: &str, location: Location) -> Result<Self> {
        let a = Attrs::new(obj, &location);
        let sop_class_uid = a.str(tags::SOP_CLASS_UID)?;
        if sop_class_uid != WSI_SOP_CLASS {
            return Err(WsiError::NotWsi { location: location.clone(), sop_class: sop_class_uid });
        }
        let image_type = a.strs(tags::IMAGE_TYPE)?;
        let flavor = ImageFlavor::from_image_type(&image_type);
        let tile_width = a.positive_u32(tags::COLUMNS)?;
        let tile_height = a.positive_u32(tags::ROWS)?;
        // A frame is decoded whole into one buffer: Rows and Columns are an unsigned short
        // (US) each, and their product is bounded, so that a hostile header cannot make the
        // reader allocate gigabytes for one tile before its data says otherwise (found by the
        // dicom_attributes fuzz target: Rows 6,235,915 written as IS).
        for (tag, v) in [(tags::COLUMNS, tile_width), (tags::ROWS, tile_height)] {
            if v > u32::from(u16::MAX) {
                return Err(a.error(tag, format!("{v} does not fit its VR (US, at most 65535)")));
            }
        }
        if u64::from(tile_width) * u64::from(tile_height) > MAX_FRAME_PIXELS {
            return Err(a.error(
                tags::ROWS,
                format!(
                    "a frame of {tile_width}x{tile_height} pixels is more than the {MAX_FRAME_PIXELS} pixels this reader decodes at once \
                     (whole-slide tiles are at most a few thousand pixels a side): the header is corrupt"
                ),
            ));
        }
        let width = match a.opt_i64(tags::TOTAL_PIXEL_MATRIX_COLUMNS)? {
            Some(_) => a.positive_u32(tags::TOTAL_PIXEL_MATRIX_COLUMNS)?,
            None => tile_width,
        };
        let height = match a.opt_i64(tags::TOTAL_PIXEL_MATRIX_ROWS)? {
            Some(_) => a.positive_u32(tags::TOTAL_PIXEL_MATRIX_ROWS)?,
            None => tile_height,
        };
        let number_of_frames = match a.opt_i64(tags::NUMBER_OF_FRAMES)? {
            Some(_) => a.positive_u32(tags::NUMBER_OF_FRAMES)?,
            None => 1,
        };
        let small = |tag, default: u16| -> Result<u16> {
            match a.opt_i64(tag)? {
                None => Ok(default),
                Some(v) => u16::try_from(v).map_err(|_| a.error(tag, format!("value {v} out of range"))),
            }
        };
        let samples_per_pixel = small(tags::SAMPLES_PER_PIXEL, 1)?;
        let bits_allocated = small(tags::BITS_ALLOCATED, 8)?;
        let planar_configuration = small(tags::PLANAR_CONFIGURATION, 0)?;
        let photometric = a.str(tags::PHOTOMETRIC_INTERPRETATION)?;
        let positive_or_one = |tag| -> Result<u32> {
            match a.opt_i64(tag)? {
                None => Ok(1),
                Some(_) => a.positive_u32(tag),
            }
        };
        let focal_planes = positive_or_one(tags::TOTAL_PIXEL_MATRIX_FOCAL_PLANES)?;
        let optical_paths = positive_or_one(tags::NUMBER_OF_OPTICAL_PATHS)?;

        let mut warnings = Vec::new();
        let pixel_spacing_mm = read_pixel_spacing(&a, width, height, &mut warnings)?;
        let organization = read_organization(&a, number_of_frames)?;
        let extended_offset_table = read_extended_offset_table(&a, number_of_frames)?;
        let icc_profile = a
            .first_item(tags::OPTICAL_PATH_SEQUENCE)
            .and_then(|item| item.get(tags::ICC_PROFILE))
            .and_then(|e| e.to_bytes().ok())
            .map(|b| b.into_owned())
            .filter(|b| !b.is_empty());

        Ok(ImageInfo {
            sop_instance_uid: a.str(tags::SOP_INSTANCE_UID)?,
            study_instance_uid: a.str(tags::STUDY_INSTANCE_UID)?,
            series_instance_uid: a.str(tags::SERIES_INSTANCE_UID)?,
            location,
            sop_class_uid,
            image_type,
            flavor,
            transfer_syntax: transfer_syntax.trim_end_matches('\0').trim().to_string(),
            width,
            height,
            tile_width,
            tile_height,
            number_of_frames,
            samples_per_pixel,
            photometric,
            bits_allocated,
            planar_configuration,
            focal_planes,
            optical_paths,
            pixel_spacing_mm,
            organization,
            extended_offset_table,
            icc_profile,
            icc_profile_error: None,
            warnings,
        })
    }

    /// Tiles across and down the total pixel matrix.
    pub fn tile_grid(&self) -> (u32, u32) {
        (self.width.div_ceil(self.tile_width), self.height.div_ceil(self.tile_height))
    }

    /// Mean of the two pixel spacings, in µm per pixel.
    pub fn mpp(&self) -> Option<f64> {
        self.pixel_spacing_mm.map(|(r, c)| (r + c) * 0.5 * 1000.0)
    }
}

/// PixelSpacing from the shared functional groups (or the top level), checked against
/// ImagedVolumeWidth/Height. When they disagree (some writers swap or mix the two values),
/// the spacing implied by the imaged volume wins and a warning says so.
fn read_pixel_spacing(a: &Attrs<'_>, width: u32, height: u32, warnings: &mut Vec<String>) -> Result<Option<(f64, f64)>> {
    let measures =
        a.first_item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|shared| Attrs::new(shared, a.location).first_item(tags::PIXEL_MEASURES_SEQUENCE));
    let declared = match measures {
        Some(m) => Attrs::new(m, a.location).opt_floats(tags::PIXEL_SPACING)?,
        None => a.opt_floats(tags::PIXEL_SPACING)?,
    };
    let declared = match declared {
        None => None,
        Some(v) if v.len() == 2 && v.iter().all(|x| x.is_finite() && *x > 0.0) => Some((v[0], v[1])),
        Some(v) => return Err(a.error(tags::PIXEL_SPACING, format!("expected two positive numbers, found {v:?}"))),
    };
    let imaged_w = a.opt_floats(tags::IMAGED_VOLUME_WIDTH)?.and_then(|v| v.first().copied());
    let imaged_h = a.opt_floats(tags::IMAGED_VOLUME_HEIGHT)?.and_then(|v| v.first().copied());
    let from_volume = match (imaged_w, imaged_h) {
        (Some(w), Some(h)) if w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite() => Some((h / f64::from(height), w / f64::from(width))),
        _ => None,
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 0.01 * a.max(b);
    Ok(match (declared, from_volume) {
        (Some(d), Some(v)) if close(d.0, v.0) && close(d.1, v.1) => Some(d),
        (Some(d), Some(v)) => {
            warnings.push(format!(
                "PixelSpacing ({:.4}, {:.4}) µm/px disagrees with ImagedVolumeWidth/Height over the \
                 pixel matrix ({:.4}, {:.4}) µm/px; using the latter",
                d.0 * 1e3,
                d.1 * 1e3,
                v.0 * 1e3,
                v.1 * 1e3
            ));
            Some(v)
        }
        (Some(d), None) => Some(d),
        (None, v) => v,
    })
}

fn read_organization(a: &Attrs<'_>, number_of_frames: u32) -> Result<Organization> {
    let declared = a.opt_str(tags::DIMENSION_ORGANIZATION_TYPE)?.map(|s| s.to_ascii_uppercase());
    if declared.as_deref() == Some("TILED_FULL") {
        return Ok(Organization::TiledFull);
    }
    let per_frame = a.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if per_frame.is_empty() {
        // Single-frame images and files without any organisation info: frames fill the grid.
        return Ok(Organization::TiledFull);
    }
    if per_frame.len() != number_of_frames as usize {
        return Err(a.error(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, format!("has {} items but NumberOfFrames is {number_of_frames}", per_frame.len())));
    }
    let mut positions = Vec::with_capacity(per_frame.len());
    for (i, item) in per_frame.iter().enumerate() {
        let item_attrs = Attrs::new(item, a.location);
        let Some(pos) = item_attrs.first_item(tags::PLANE_POSITION_SLIDE_SEQUENCE) else {
            return Err(a.error(tags::PLANE_POSITION_SLIDE_SEQUENCE, format!("missing in item {} of PerFrameFunctionalGroupsSequence", i + 1)));
        };
        let p = Attrs::new(pos, a.location);
        let col = p.i64(tags::COLUMN_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX)?;
        let row = p.i64(tags::ROW_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX)?;
        positions.push((col, row));
    }
    Ok(Organization::PerFramePositions(positions))
}

fn read_extended_offset_table(a: &Attrs<'_>, number_of_frames: u32) -> Result<Option<(Vec<u64>, Vec<u64>)>> {
    let read_u64s = |tag| -> Result<Option<Vec<u64>>> {
        match a.obj.get(tag) {
            None => Ok(None),
            Some(e) if e.is_empty() => Ok(None),
            Some(e) => {
                let bytes = e.to_bytes().map_err(|err| a.error(tag, format!("expected binary data: {err}")))?;
                if bytes.len() % 8 != 0 {
                    return Err(a.error(tag, format!("length {} is not a multiple of 8", bytes.len())));
                }
                Ok(Some(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()))
            }
        }
    };
    let offsets = read_u64s(tags::EXTENDED_OFFSET_TABLE)?;
    let lengths = read_u64s(tags::EXTENDED_OFFSET_TABLE_LENGTHS)?;
    match (offsets, lengths) {
        (Some(o), Some(l)) => {
            if o.len() != number_of_frames as usize || l.len() != number_of_frames as usize {
                return Err(
                    a.error(tags::EXTENDED_OFFSET_TABLE, format!("has {} offsets and {} lengths but NumberOfFrames is {number_of_frames}", o.len(), l.len()))
                );
            }
            Ok(Some((o, l)))
        }
        _ => Ok(None),
    }
}
