//! The pipeline with a DICOMweb source: the same slide stored in a real Orthanc (see
//! `wsi/tests/orthanc/mod.rs`) and read over WADO-RS gives the same rows (positions, tissue
//! fractions, embeddings) and the same heatmap as when read from the files.

#[path = "../wsi/tests/orthanc/mod.rs"]
mod orthanc;

use arrow_array::{Array, FixedSizeListArray, Float32Array, RecordBatch, UInt32Array};
use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::path_foundation;
use haidef_wsi::wsi::{DicomWebOptions, Slide};
use haidef_wsi::{LevelChoice, PipelineOptions, SlideJob};
use orthanc::{Orthanc, Setup};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;

/// (x, y, tissue fraction, embedding) of every row.
fn rows(dir: &Path) -> Vec<(u32, u32, f32, Vec<f32>)> {
    let file = std::fs::File::open(dir.join("embeddings.parquet")).unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(Result::unwrap).collect();
    let mut out = Vec::new();
    for b in &batches {
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        let (xs, ys, tf, emb) = (col("x"), col("y"), col("tissue_fraction"), col("embedding"));
        let xs = xs.as_any().downcast_ref::<UInt32Array>().unwrap();
        let ys = ys.as_any().downcast_ref::<UInt32Array>().unwrap();
        let tf = tf.as_any().downcast_ref::<Float32Array>().unwrap();
        let emb = emb.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
        for i in 0..b.num_rows() {
            let e = emb.value(i);
            let e = e.as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec();
            out.push((xs.value(i), ys.value(i), tf.value(i), e));
        }
    }
    out
}

#[test]
fn a_slide_over_dicomweb_gives_the_same_embeddings_and_heatmap_as_its_files() {
    let Some(server) = Orthanc::start(Setup::default()) else { return };
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/slides/ihc-sparse");
    server.stow(&folder);
    let local = Slide::open(&folder).unwrap();
    let remote = Slide::open_dicomweb(&server.series_url(local.study_instance_uid(), local.series_instance_uid()), &DicomWebOptions::default()).unwrap();
    let model = path_foundation::untrained(&Device::Cpu, DType::F32).unwrap();
    // Level 1 with the tissue filter on: the mask is read over DICOMweb too.
    let opts = PipelineOptions::default().level(LevelChoice::Index(1)).min_tissue(0.25).k(3);
    let base = std::env::temp_dir().join(format!("haidef-pipeline-dicomweb-{}", std::process::id()));
    let (dir_l, dir_r) = (base.join("local"), base.join("remote"));
    let s_l = SlideJob::new(&local, &model, &dir_l).options(opts.clone()).batch_size(8).run().unwrap();
    let s_r = SlideJob::new(&remote, &model, &dir_r).options(opts.clone()).batch_size(8).run().unwrap();
    assert_eq!((s_r.embedded, s_r.patches_skipped), (s_l.embedded, s_l.patches_skipped));
    assert!(s_l.embedded > 0 && s_l.patches_skipped > 0, "the filter keeps some and skips some");
    let (rows_l, rows_r) = (rows(&dir_l), rows(&dir_r));
    assert_eq!(rows_l.len(), s_l.embedded);
    for (a, b) in rows_l.iter().zip(&rows_r) {
        assert_eq!((a.0, a.1, a.2), (b.0, b.1, b.2));
        let err = a.3.iter().zip(&b.3).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "patch ({}, {}): embeddings differ by {err}", a.0, a.1);
    }
    for name in ["heatmap.png", "clusters.png"] {
        assert!(std::fs::read(dir_l.join(name)).unwrap() == std::fs::read(dir_r.join(name)).unwrap(), "{name} differs");
    }
    std::fs::remove_dir_all(&base).unwrap();
}
