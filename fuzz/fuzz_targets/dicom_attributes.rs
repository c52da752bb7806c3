#![no_main]
//! cargo-fuzz target `dicom_attributes`: structure-aware. Byte mutation of a DICOM file mostly
//! breaks its encoding, so the reader's checks of *well-encoded but inconsistent* headers are
//! reached rarely: a frame count that disagrees with the grid, a tile larger than the matrix,
//! per-frame positions off the matrix, a Basic Offset Table that lies, a photometric
//! interpretation the pixels do not have. Here one input is a list of attribute-level edits
//! (chosen with `arbitrary`) applied by dicom-object to a real fixture level, which dicom-object
//! then writes as a valid Part 10 file; that file goes through the same harness as
//! `dicom_file` (`fuzz/harness/wsi.rs`). A finding is kept as the file it produced, under
//! `fixtures/fuzz-regressions/dicom_file/` (set HAIDEF_FUZZ_DUMP=DIR to write each input's file).

#[path = "../harness/wsi.rs"]
mod harness;

use arbitrary::Arbitrary;
use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use std::sync::OnceLock;

/// Real levels to edit: JPEG TILED_FULL (2 frames), TILED_SPARSE with per-frame positions,
/// and an uncompressed TILED_FULL level.
const BASES: [&str; 3] = ["slides/ihc-full/level-3.dcm", "slides/ihc-sparse/level-3.dcm", "slides/ihc-raw-tiled-full/level-1.dcm"];

fn bases() -> &'static Vec<DefaultDicomObject> {
    static B: OnceLock<Vec<DefaultDicomObject>> = OnceLock::new();
    B.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        BASES.iter().map(|p| dicom_object::open_file(root.join(p)).expect("fixture")).collect()
    })
}

/// The attributes the reader's model rests on.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Attr {
    Rows,
    Columns,
    NumberOfFrames,
    TotalPixelMatrixColumns,
    TotalPixelMatrixRows,
    TotalPixelMatrixFocalPlanes,
    SamplesPerPixel,
    BitsAllocated,
    BitsStored,
    HighBit,
    PixelRepresentation,
    PlanarConfiguration,
    PhotometricInterpretation,
    DimensionOrganizationType,
    ImageType,
    SopClassUid,
    SeriesInstanceUid,
    ImagedVolumeWidth,
    ImagedVolumeHeight,
    NumberOfOpticalPaths,
    ExtendedOffsetTable,
    ExtendedOffsetTableLengths,
}

impl Attr {
    fn tag(self) -> Tag {
        match self {
            Attr::Rows => tags::ROWS,
            Attr::Columns => tags::COLUMNS,
            Attr::NumberOfFrames => tags::NUMBER_OF_FRAMES,
            Attr::TotalPixelMatrixColumns => tags::TOTAL_PIXEL_MATRIX_COLUMNS,
            Attr::TotalPixelMatrixRows => tags::TOTAL_PIXEL_MATRIX_ROWS,
            Attr::TotalPixelMatrixFocalPlanes => tags::TOTAL_PIXEL_MATRIX_FOCAL_PLANES,
            Attr::SamplesPerPixel => tags::SAMPLES_PER_PIXEL,
            Attr::BitsAllocated => tags::BITS_ALLOCATED,
            Attr::BitsStored => tags::BITS_STORED,
            Attr::HighBit => tags::HIGH_BIT,
            Attr::PixelRepresentation => tags::PIXEL_REPRESENTATION,
            Attr::PlanarConfiguration => tags::PLANAR_CONFIGURATION,
            Attr::PhotometricInterpretation => tags::PHOTOMETRIC_INTERPRETATION,
            Attr::DimensionOrganizationType => tags::DIMENSION_ORGANIZATION_TYPE,
            Attr::ImageType => tags::IMAGE_TYPE,
            Attr::SopClassUid => tags::SOP_CLASS_UID,
            Attr::SeriesInstanceUid => tags::SERIES_INSTANCE_UID,
            Attr::ImagedVolumeWidth => tags::IMAGED_VOLUME_WIDTH,
            Attr::ImagedVolumeHeight => tags::IMAGED_VOLUME_HEIGHT,
            Attr::NumberOfOpticalPaths => tags::NUMBER_OF_OPTICAL_PATHS,
            Attr::ExtendedOffsetTable => tags::EXTENDED_OFFSET_TABLE,
            Attr::ExtendedOffsetTableLengths => tags::EXTENDED_OFFSET_TABLE_LENGTHS,
        }
    }
}

/// Attributes inside functional group items.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Inner {
    /// Plane Position (Slide): column / row of the frame in the total pixel matrix.
    ColumnPosition,
    RowPosition,
    /// Pixel Measures: PixelSpacing.
    PixelSpacing,
}

/// A value, with the VR the dictionary gives (or a wrong one).
#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Int(i64),
    /// 0, 1, -1, 255, 256, 65535, 65536, 2^31 - 1, 2^32 - 1, 2^32, i64::MIN
    Edge(u8),
    Float(f64),
    Text(String),
    Ints(Vec<i32>),
}

impl Val {
    fn primitive(&self, vr: VR) -> PrimitiveValue {
        const EDGES: [i64; 11] = [0, 1, -1, 255, 256, 65535, 65536, i32::MAX as i64, u32::MAX as i64, 1 << 32, i64::MIN];
        let int = match self {
            Val::Int(i) => Some(*i),
            Val::Edge(e) => Some(EDGES[*e as usize % EDGES.len()]),
            _ => None,
        };
        match (vr, self, int) {
            (VR::US, _, Some(i)) => PrimitiveValue::from(i as u16),
            (VR::UL, _, Some(i)) => PrimitiveValue::from(i as u32),
            (VR::SL, _, Some(i)) => PrimitiveValue::from(i as i32),
            (VR::FD, _, Some(i)) => PrimitiveValue::from(i as f64),
            (VR::FL, _, Some(i)) => PrimitiveValue::from(i as f32),
            (VR::OV, _, Some(i)) => PrimitiveValue::from(i as u64),
            (VR::FD, Val::Float(f), _) => PrimitiveValue::from(*f),
            (VR::FL, Val::Float(f), _) => PrimitiveValue::from(*f as f32),
            (_, Val::Float(f), _) => PrimitiveValue::from(f.to_string()),
            (_, Val::Text(t), _) => PrimitiveValue::from(t.chars().take(64).collect::<String>()),
            (VR::US, Val::Ints(v), _) => PrimitiveValue::U16(v.iter().take(16).map(|&i| i as u16).collect()),
            (VR::UL | VR::OV, Val::Ints(v), _) => PrimitiveValue::U32(v.iter().take(16).map(|&i| i as u32).collect()),
            (_, Val::Ints(v), _) => PrimitiveValue::from(v.iter().take(16).map(|i| i.to_string()).collect::<Vec<_>>().join("\\")),
            (_, _, Some(i)) => PrimitiveValue::from(i.to_string()),
            _ => PrimitiveValue::Empty,
        }
    }
}

/// One edit of the dataset.
#[derive(Arbitrary, Debug, Clone)]
enum Edit {
    Set(Attr, Val),
    /// Set with a VR the dictionary does not give the attribute.
    SetWrongVr(Attr, Val),
    Remove(Attr),
    /// In item `item` of the Shared (false) or Per-Frame (true) Functional Groups Sequence.
    SetInGroup { per_frame: bool, item: u16, inner: Inner, val: Val },
    /// Drops the Per-Frame Functional Groups item `item`.
    DropFrameItem(u16),
    /// Pixel Data: remove fragment `i`.
    DropFragment(u16),
    /// Pixel Data: repeat fragment `i` at the end.
    RepeatFragment(u16),
    /// Pixel Data: cut fragment `i` to `len` bytes.
    CutFragment(u16, u16),
    /// Pixel Data: set Basic Offset Table entry `i` (or append when past the end).
    SetOffset(u16, u32),
    /// Pixel Data: empty the Basic Offset Table.
    ClearOffsets,
}

#[derive(Arbitrary, Debug)]
struct Input {
    base: u8,
    edits: Vec<Edit>,
}

fn dictionary_vr(tag: Tag) -> VR {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    dicom_dictionary_std::StandardDataDictionary.by_tag(tag).and_then(|e| e.vr().exact()).unwrap_or(VR::UN)
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, val: &Val) {
    obj.put(DataElement::new(tag, vr, val.primitive(vr)));
}

fn inner_tags(inner: Inner) -> (Tag, Tag) {
    match inner {
        Inner::ColumnPosition => (tags::PLANE_POSITION_SLIDE_SEQUENCE, tags::COLUMN_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX),
        Inner::RowPosition => (tags::PLANE_POSITION_SLIDE_SEQUENCE, tags::ROW_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX),
        Inner::PixelSpacing => (tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING),
    }
}

fn apply(obj: &mut DefaultDicomObject, edit: &Edit) {
    match edit {
        Edit::Set(a, v) => put(obj, a.tag(), dictionary_vr(a.tag()), v),
        Edit::SetWrongVr(a, v) => {
            let vr = if matches!(dictionary_vr(a.tag()), VR::US | VR::UL) { VR::IS } else { VR::US };
            put(obj, a.tag(), vr, v);
        }
        Edit::Remove(a) => {
            obj.remove_element(a.tag());
        }
        Edit::SetInGroup { per_frame, item, inner, val } => {
            let seq = if *per_frame { tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE } else { tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE };
            let (macro_seq, tag) = inner_tags(*inner);
            obj.update_value(seq, |v| {
                let Some(items) = v.items_mut() else { return };
                let n = items.len();
                if n == 0 {
                    return;
                }
                let group = &mut items[*item as usize % n];
                group.update_value(macro_seq, |mv| {
                    if let Some(first) = mv.items_mut().and_then(|m| m.first_mut()) {
                        put(first, tag, dictionary_vr(tag), val);
                    }
                });
            });
        }
        Edit::DropFrameItem(i) => {
            obj.update_value(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, |v| {
                if let Some(items) = v.items_mut() {
                    if !items.is_empty() {
                        let n = items.len();
                        items.remove(*i as usize % n);
                    }
                }
            });
        }
        Edit::DropFragment(_) | Edit::RepeatFragment(_) | Edit::CutFragment(..) | Edit::SetOffset(..) | Edit::ClearOffsets => {
            obj.update_value(tags::PIXEL_DATA, |v| {
                let Value::PixelSequence(seq) = v else { return };
                let mut offsets: Vec<u32> = seq.offset_table().to_vec();
                let mut fragments: Vec<Vec<u8>> = seq.fragments().to_vec();
                let n = fragments.len().max(1);
                match edit {
                    Edit::DropFragment(i) if !fragments.is_empty() => {
                        fragments.remove(*i as usize % n);
                    }
                    Edit::RepeatFragment(i) if !fragments.is_empty() => fragments.push(fragments[*i as usize % n].clone()),
                    Edit::CutFragment(i, len) if !fragments.is_empty() => {
                        let f = &mut fragments[*i as usize % n];
                        // Fragments have even lengths in a valid file; keep that, so the cut is
                        // a lie about content, not about encoding.
                        f.truncate((*len as usize & !1).min(f.len()));
                    }
                    Edit::SetOffset(i, o) => match offsets.get_mut(*i as usize) {
                        Some(slot) => *slot = *o,
                        None => offsets.push(*o),
                    },
                    Edit::ClearOffsets => offsets.clear(),
                    _ => {}
                }
                *seq = PixelFragmentSequence::new(offsets, fragments);
            });
        }
    }
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let bases = bases();
    let mut obj = bases[input.base as usize % bases.len()].clone();
    for edit in input.edits.iter().take(16) {
        apply(&mut obj, edit);
    }
    // A whole Part 10 file: preamble, "DICM", file meta, dataset.
    let mut file = Vec::new();
    if obj.write_all(&mut file).is_err() {
        return;
    }
    if let Ok(dir) = std::env::var("HAIDEF_FUZZ_DUMP") {
        let _ = std::fs::write(std::path::Path::new(&dir).join("last.dcm"), &file);
    }
    harness::dicom_file(&file);
});
