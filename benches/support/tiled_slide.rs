//! A large slide for throughput runs, made from the fixture by tiling: a TILED_FULL JPEG
//! pyramid whose level 0 is `across × down` frames of 256×256, each a (compressed, untouched)
//! interior frame of `fixtures/slides/ihc-full/level-0.dcm` repeated in a pattern, with lower
//! levels halving until the longest side is ≤ 2048 px (so the tissue mask has a level to read).
//! Written with dicom-rs (dicom-object), attributes updated from the fixture's own header:
//! matrix size, frame count, pixel spacing, imaged volume, UIDs, a basic offset table.
//! Used where a bigger slide than the fixtures is needed (e.g. the GPU end-to-end bench).
#![allow(dead_code)]

use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::open_file;
use std::path::{Path, PathBuf};

const TILE: u32 = 256;

/// Writes the pyramid into `dir` (level-0.dcm, level-1.dcm, …) and returns `dir`.
pub fn build(fixtures: &Path, dir: &Path, across: u32, down: u32) -> PathBuf {
    let src = open_file(fixtures.join("slides/ihc-full/level-0.dcm")).expect("fixture level 0");
    let uint = |tag| src.element(tag).unwrap().to_int::<u32>().unwrap();
    let (src_w, src_h) = (uint(tags::TOTAL_PIXEL_MATRIX_COLUMNS), uint(tags::TOTAL_PIXEL_MATRIX_ROWS));
    let frames: Vec<Vec<u8>> = src.element(tags::PIXEL_DATA).unwrap().value().fragments().expect("encapsulated").to_vec();
    let src_across = src_w.div_ceil(TILE);
    assert_eq!(frames.len() as u32, src_across * src_h.div_ceil(TILE), "one fragment per frame");
    // Interior frames only: edge frames carry padding.
    let (use_across, use_down) = (src_w / TILE, src_h / TILE);
    // Pixel spacing (row, column) in mm from the imaged volume: the fixture's PixelSpacing
    // attribute carries OrthancWSIDicomizer 1.1's mix-up (see wsi/src/image_info.rs).
    let volume = |tag| src.element(tag).unwrap().to_float64().unwrap();
    let spacing = [volume(tags::IMAGED_VOLUME_HEIGHT) / f64::from(src_h), volume(tags::IMAGED_VOLUME_WIDTH) / f64::from(src_w)];
    let (width0, height0) = (across * TILE, down * TILE);
    let series = format!("2.25.{}", 3_141_592_653_589_793_238u128 * 1_000_000 + u128::from(across) * 1000 + u128::from(down));
    std::fs::create_dir_all(dir).unwrap();
    let mut level = 0u32;
    loop {
        let (w, h) = ((width0 >> level).max(1), (height0 >> level).max(1));
        let (fa, fd) = (w.div_ceil(TILE), h.div_ceil(TILE));
        let mut fragments = Vec::with_capacity((fa * fd) as usize);
        let mut offsets = Vec::with_capacity((fa * fd) as usize);
        let mut offset = 0u32;
        for ty in 0..fd {
            for tx in 0..fa {
                let (sx, sy) = ((tx * 7 + ty * 3 + level) % use_across, (ty * 5 + tx + level) % use_down);
                let mut f = frames[(sy * src_across + sx) as usize].clone();
                if f.len() % 2 == 1 {
                    f.push(0);
                }
                offsets.push(offset);
                offset += 8 + f.len() as u32;
                fragments.push(f);
            }
        }
        let mut obj = src.clone();
        let scale = f64::from(1u32 << level);
        let sop = format!("{series}.{}", level + 1);
        let put = |obj: &mut dicom_object::DefaultDicomObject, tag, vr, value: PrimitiveValue| {
            obj.put_element(DataElement::new(tag, vr, value));
        };
        put(&mut obj, tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, PrimitiveValue::from(w));
        put(&mut obj, tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, PrimitiveValue::from(h));
        put(&mut obj, tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from((fa * fd).to_string()));
        // The physical size stays that of level 0.
        put(&mut obj, tags::IMAGED_VOLUME_WIDTH, VR::FL, PrimitiveValue::from(width0 as f32 * spacing[1] as f32));
        put(&mut obj, tags::IMAGED_VOLUME_HEIGHT, VR::FL, PrimitiveValue::from(height0 as f32 * spacing[0] as f32));
        put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, PrimitiveValue::from(series.clone()));
        put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(sop.clone()));
        let spacing_k = format!("{:.9}\\{:.9}", spacing[0] * scale, spacing[1] * scale);
        obj.update_value_at((tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0, tags::PIXEL_MEASURES_SEQUENCE, 0, tags::PIXEL_SPACING), |v| {
            *v = Value::Primitive(PrimitiveValue::from(spacing_k.clone()));
        })
        .unwrap();
        obj.update_value(tags::PIXEL_DATA, |v| *v = Value::PixelSequence(PixelFragmentSequence::new(offsets.clone(), std::mem::take(&mut fragments))));
        obj.meta_mut().media_storage_sop_instance_uid = sop;
        obj.meta_mut().update_information_group_length();
        obj.write_to_file(dir.join(format!("level-{level}.dcm"))).unwrap();
        if w.max(h) <= 2048 {
            break;
        }
        level += 1;
    }
    dir.to_path_buf()
}
