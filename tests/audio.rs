//! HeAR from audio file to embedding, checked against an independent reference
//! (fixtures/hear: scipy's reader and FFT resampling as Google's serving uses them, the front
//! end written in PyTorch from Google's published steps, and transformers' ViTModel configured
//! as google/hear-pytorch with the same seeded weights), on recordings made by espeak-ng and
//! sox; and the bad inputs a user will meet.

mod common;

use arrow_array::{Array, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, StringArray};
use haidef_wsi::encoders::candle::{DType, Device, Tensor};
use haidef_wsi::encoders::{hear, FrontEnd, FrontEndConfig, HearEncoder};
use haidef_wsi::read_audio;
use haidef_wsi::{resample, resampled_len};
use haidef_wsi::{AudioJob, AudioOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[path = "../fuzz/harness/audio.rs"]
mod fuzz_harness;

/// Every audio input the `audio_file` fuzzer found a fault with (fixtures/fuzz-regressions/
/// audio_file/, docs/FUZZING.md), replayed through the same code: each must be handled.
#[test]
fn every_kept_fuzz_input_is_handled() {
    let dir = common::root().join("fixtures/fuzz-regressions/audio_file");
    for file in std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| !p.ends_with("README.md")) {
        fuzz_harness::audio_file(&std::fs::read(&file).unwrap());
    }
}

/// The first one: 57 bytes of junk, then a FLAC stream whose Vorbis comment claims 3.6 GB,
/// which symphonia 0.5 would allocate before reading. Refused, saying where and what.
#[test]
fn a_tag_claiming_more_than_the_file_holds_is_refused_before_symphonia_allocates_it() {
    let err = kept_input_error("flac-comment-3.6gb-99ed8255");
    assert!(err.contains(".flac") && err.contains("FLAC metadata block") && err.contains("a Vorbis comment") && err.contains("claims"), "{err}");
}

/// Files a real encoder tagged (sox: Vorbis comments in FLAC and in Ogg Vorbis;
/// fixtures/hear/tagged/make_tagged.sh) pass the tag checks and decode: the FLAC exactly as the
/// WAV it was made from, the Ogg Vorbis as libvorbis decodes it.
#[test]
fn tagged_flac_and_ogg_files_pass_the_tag_checks_and_decode() {
    let wav = read_audio(&fixtures().join("speech_noise_16k.wav"), 60.0).unwrap();
    let flac = read_audio(&fixtures().join("tagged/tagged.flac"), 60.0).unwrap();
    assert_eq!((flac.sample_rate, flac.samples.len()), (16000, 8000));
    assert_eq!(flac.samples[..], wav.samples[..8000]);
    // The Ogg Vorbis file against libvorbis's decoding of it (sox): as many samples (symphonia
    // alone gives 8192: its Ogg reader does not trim the last packet), the same values.
    let ogg = read_audio(&fixtures().join("tagged/tagged.ogg"), 60.0).unwrap();
    let libvorbis = read_audio(&fixtures().join("tagged/tagged.ogg.libvorbis.wav"), 60.0).unwrap();
    assert_eq!((ogg.sample_rate, ogg.samples.len()), (16000, libvorbis.samples.len()));
    let worst = ogg.samples.iter().zip(&libvorbis.samples).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < TOL_VORBIS, "largest difference from libvorbis: {worst}");
}

/// symphonia's Vorbis decoder against libvorbis, per sample (full scale 1); measured 1.5e-5.
const TOL_VORBIS: f32 = 1e-4;

/// The second: a WAV whose fmt chunk gives a sample rate of 0, on which symphonia 0.5 panics
/// (`TimeBase::new`). The panic is caught; the plain WAV reader then names the problem.
#[test]
fn a_header_symphonia_panics_on_is_an_error_naming_it() {
    let err = kept_input_error("wav-rate-0-panic-a33b7f50");
    assert!(err.contains("TimeBase cannot have 0") && err.contains("symphonia failed on it"), "{err}");
    assert!(err.contains("0 Hz"), "the plain reader's word on it: {err}");
}

/// `read_audio`'s error on a kept `audio_file` input, written as its harness writes it (the
/// first byte picks the extension).
fn kept_input_error(name: &str) -> String {
    let found = std::fs::read(common::root().join("fixtures/fuzz-regressions/audio_file").join(name)).unwrap();
    let ext = ["wav", "flac", "ogg", "mp3"][found[0] as usize % 4];
    let path = std::env::temp_dir().join(format!("haidef-audio-kept-{}-{name}.{ext}", std::process::id()));
    std::fs::write(&path, &found[1..]).unwrap();
    let err = read_audio(&path, 60.0).unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    err
}

fn fixtures() -> PathBuf {
    // The build's path, or (a binary carried to another machine, tools/gpu_check.sh) the
    // repository root it runs in.
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hear");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("fixtures/hear")
    }
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn raw_f32(rel: &str) -> Vec<f32> {
    std::fs::read(fixtures().join(rel)).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// `max |a − b| / max |b|`: the error relative to the reference's scale.
fn scaled_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).fold(0.0, f64::max);
    diff / b.iter().map(|y| f64::from(y.abs())).fold(0.0, f64::max)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The 16 kHz signal as the job computes it.
fn signal(path: &Path) -> Vec<f32> {
    let rec = read_audio(path, 60.0).unwrap();
    if rec.sample_rate == 16_000 {
        rec.samples
    } else {
        resample(&rec.samples, resampled_len(rec.samples.len(), rec.sample_rate, 16_000)).unwrap()
    }
}

fn files(r: &Value) -> Vec<&Value> {
    r["files"].as_array().unwrap().iter().filter(|f| f.get("same_signal_as").is_none()).collect()
}

#[test]
fn decoding_mixing_and_resampling_match_scipy() {
    let r = reference("reference.json");
    for f in files(&r) {
        let name = f["path"].as_str().unwrap();
        let ours = signal(&fixtures().join(name));
        let theirs = raw_f32(f["signal"]["file"].as_str().unwrap());
        assert_eq!(ours.len(), theirs.len(), "{name}: resampled length");
        let err = max_abs(&ours, &theirs);
        // Integer samples are exact in f32; the channel mean rounds once in f32 (scipy's path
        // is f64), the resampling is f64 here and there.
        assert!(err < 2e-6, "{name}: signal differs by {err}");
        println!("{name}: {} samples at 16 kHz, max |diff| {err:.2e}", ours.len());
    }
    // FLAC is lossless: the same samples as the WAV it was made from.
    let flac = read_audio(&fixtures().join("speech_noise_16k.flac"), 60.0).unwrap();
    let wav = read_audio(&fixtures().join("speech_noise_16k.wav"), 60.0).unwrap();
    assert_eq!((flac.sample_rate, flac.samples.len()), (wav.sample_rate, wav.samples.len()));
    assert_eq!(flac.samples, wav.samples);
}

#[test]
fn the_front_end_matches_the_pytorch_reference() {
    let r = reference("reference.json");
    let fe = FrontEnd::new(FrontEndConfig::hear(), &Device::Cpu).unwrap();
    for f in files(&r) {
        let name = f["path"].as_str().unwrap();
        let mut clip = raw_f32(f["signal"]["file"].as_str().unwrap());
        clip.resize(32_000, 0.0);
        let x = Tensor::from_vec(clip, (1, 32_000), &Device::Cpu).unwrap();
        let pcen = fe.mel_pcen(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let image = fe.forward(&x).unwrap();
        assert_eq!(image.dims(), &[1, 1, 192, 128]);
        let image = image.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // The references are the float64 front end. The tolerance is 1e-4 of the reference's
        // largest value, or PyTorch's own float32 error on the clip where that is larger: in a
        // mostly silent clip (0.1 s of sound, 1.9 s of padding) the silent frames' mel power is
        // float32 rounding noise, which PCEN (x / M^0.8) lifts to ~1e-3 in any float32 run.
        let (pcen_ref, image_ref) = (raw_f32(f["pcen"]["file"].as_str().unwrap()), raw_f32(f["image"]["file"].as_str().unwrap()));
        let (e_pcen, e_image) = (scaled_err(&pcen, &pcen_ref), scaled_err(&image, &image_ref));
        let peak = |v: &[f32]| f64::from(v.iter().map(|x| x.abs()).fold(0.0, f32::max));
        let torch = &f["front_end_f32_vs_f64"];
        let (t_pcen, t_image) =
            (torch["pcen_max_abs_diff"].as_f64().unwrap() / peak(&pcen_ref), torch["image_max_abs_diff"].as_f64().unwrap() / peak(&image_ref));
        println!("{name}: PCEN {e_pcen:.2e} (PyTorch f32 {t_pcen:.2e}), image {e_image:.2e} (PyTorch f32 {t_image:.2e})");
        assert!(e_pcen < t_pcen.max(1e-4) && e_image < t_image.max(1e-4), "{name}: PCEN {e_pcen}, image {e_image}");
    }
}

fn depth_two() -> HearEncoder {
    let cfg = haidef_wsi::encoders::VitConfig { depth: 2, ..hear::vit_config() };
    HearEncoder::untrained(hear::MODEL_ID, &cfg, hear::UNTRAINED_SEED, &Device::Cpu, DType::F32).unwrap()
}

struct Rows {
    path: Vec<String>,
    start: Vec<f64>,
    end: Vec<f64>,
    padded: Vec<bool>,
    embedding: Vec<Vec<f32>>,
    meta: std::collections::HashMap<String, String>,
}

fn read_rows(path: &Path) -> Rows {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = common::key_value_metadata(&builder);
    let mut rows = Rows { path: vec![], start: vec![], end: vec![], padded: vec![], embedding: vec![], meta };
    for batch in builder.build().unwrap() {
        let b = batch.unwrap();
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let p = col("path");
        rows.path.extend(p.as_any().downcast_ref::<StringArray>().unwrap().iter().map(|s| s.unwrap().to_string()));
        rows.start.extend(col("start_s").as_any().downcast_ref::<Float64Array>().unwrap().values().iter());
        rows.end.extend(col("end_s").as_any().downcast_ref::<Float64Array>().unwrap().values().iter());
        rows.padded.extend(col("padded").as_any().downcast_ref::<BooleanArray>().unwrap().iter().map(|v| v.unwrap()));
        let e = col("embedding");
        let list = e.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
        for i in 0..list.len() {
            rows.embedding.push(list.value(i).as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec());
        }
    }
    rows
}

#[test]
fn the_job_writes_every_window_with_transformers_embeddings() {
    let r = reference("reference.json");
    let model = depth_two();
    let files: Vec<PathBuf> = files(&r).iter().map(|f| fixtures().join(f["path"].as_str().unwrap())).collect();
    let dir = tempdir();
    let out = dir.join("audio.parquet");
    let png = dir.join("audio.png");
    let summary = AudioJob::new(files.clone(), &model, &out).model_name("hear").batch_size(4).picture(&png).run().unwrap();
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    let rows = read_rows(&out);
    let mut i = 0;
    let mut worst = 0.0f32;
    for f in self::files(&r) {
        let name = f["path"].as_str().unwrap();
        for w in f["windows"].as_array().unwrap() {
            assert!(rows.path[i].ends_with(name), "row {i}: {} vs {name}", rows.path[i]);
            assert!((rows.start[i] - w["start_s"].as_f64().unwrap()).abs() < 1e-9, "{name} row {i} start");
            assert!((rows.end[i] - w["end_s"].as_f64().unwrap()).abs() < 1e-9, "{name} row {i} end {} vs {}", rows.end[i], w["end_s"]);
            assert_eq!(rows.padded[i], w["padded"].as_bool().unwrap(), "{name} row {i} padded");
            let d = max_abs(&rows.embedding[i], &floats(&w["embedding"]));
            worst = worst.max(d);
            assert!(d < 1e-3, "{name} window {i}: embedding differs by {d}");
            i += 1;
        }
    }
    assert_eq!(i, rows.path.len(), "rows beyond the reference's windows");
    println!("{i} windows, worst max |diff| {worst:.2e}");
    assert_eq!(rows.meta["model_id"], "google/hear-pytorch");
    assert_eq!(rows.meta["windows_embedded"], i.to_string());
    assert!(rows.meta["warning"].contains("UNTRAINED"));
    // The picture: spectrogram (5.3 s = 530 frames) beside the 5 × 5 similarity matrix.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (530 + 16 + 256, 256));
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "haidef-audio-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_clip_embeds_alone_as_in_any_batch() {
    // Each clip is scaled by its own minimum and maximum (Google's code scales by the batch's):
    // a clip's embedding does not depend on its batch-mates.
    let model = depth_two();
    let a = raw_f32("ref/speech_noise_16k.signal.f32")[..32_000].to_vec();
    let b: Vec<f32> = a.iter().map(|v| v * 0.01).collect();
    let alone = model.embed_clips(&Tensor::from_vec(a.clone(), (1, 32_000), &Device::Cpu).unwrap()).unwrap();
    let both = model.embed_clips(&Tensor::from_vec([a, b].concat(), (2, 32_000), &Device::Cpu).unwrap()).unwrap();
    let alone = alone.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let both = both.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(max_abs(&alone, &both[..512]) < 1e-5);
    // And a quieter copy of the clip is the same clip after scaling.
    assert!(max_abs(&both[..512], &both[512..]) < 1e-3, "{}", max_abs(&both[..512], &both[512..]));
}

/// The full ViT-L (24 blocks, 303M seeded parameters) against transformers: ~1 min.
#[test]
#[ignore]
fn full_depth_matches_transformers() {
    let r = reference("reference_full.json");
    let model = HearEncoder::untrained(hear::MODEL_ID, &hear::vit_config(), hear::UNTRAINED_SEED, &Device::Cpu, DType::F32).unwrap();
    let f = &r["files"][0];
    assert_eq!(f["path"], "speech_noise_16k.wav");
    let signal = raw_f32("ref/speech_noise_16k.signal.f32");
    for w in f["windows"].as_array().unwrap() {
        let start = w["start"].as_u64().unwrap() as usize;
        let mut clip = signal[start..(start + 32_000).min(signal.len())].to_vec();
        clip.resize(32_000, 0.0);
        let e = model.embed_clips(&Tensor::from_vec(clip, (1, 32_000), &Device::Cpu).unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let d = max_abs(&e, &floats(&w["embedding"]));
        println!("window at {start}: max |diff| {d:.2e}");
        assert!(d < 1e-3, "{d}");
    }
}

#[test]
fn bad_files_are_errors_naming_the_file_and_the_problem() {
    let bad = fixtures().join("bad");
    for (file, expect) in [
        ("empty.wav", "the file is empty"),
        ("truncated_header.wav", "ends inside its header"),
        ("truncated_data.wav", "truncated: the header announces 84800 frames, the file holds 16000"),
        ("not_audio.wav", "not a readable audio file"),
        ("nan.wav", "sample 5432 of channel 0 (at 0.340 s) is NaN"),
        ("inf.wav", "sample 5432 of channel 0 (at 0.340 s) is inf"),
        ("missing.wav", "cannot open"),
    ] {
        let err = read_audio(&bad.join(file), 60.0).unwrap_err().to_string();
        assert!(err.contains(file) && err.contains(expect), "{file}: {err}");
    }
    let scipy = fixtures().join("scipy");
    for (file, expect) in [
        // scipy reads the 236 frames present and warns; a recording cut short is refused here.
        ("test-44100Hz-le-1ch-4bytes-early-eof.wav", "truncated: the data chunk announces 4410 frames, the file holds 236"),
        ("test-44100Hz-le-1ch-4bytes-early-eof-no-data.wav", "no data chunk"),
        ("test-44100Hz-le-1ch-4bytes-incomplete-chunk.wav", "no fmt chunk"),
        // scipy refuses µ-law too.
        ("test-8000Hz-le-1ch-1byte-ulaw.wav", "format tag 0x0007"),
    ] {
        let err = read_audio(&scipy.join(file), 60.0).unwrap_err().to_string();
        assert!(err.contains(file) && err.contains(expect), "{file}: {err}");
    }
    // Longer than the limit: refused from the header, before decoding.
    let err = read_audio(&fixtures().join("speech_noise_16k.wav"), 5.0).unwrap_err().to_string();
    assert!(err.contains("5.3 s long; at most 5 s"), "{err}");
}

#[test]
fn scipys_own_test_wavs_read_as_scipy_reads_them() {
    // Big- and little-endian, RF64, WAVE_FORMAT_EXTENSIBLE, 8/12/24/32-bit integer, 32/64-bit
    // float, 1 to 4 channels: symphonia reads some, the plain reader (src/audio/wav.rs) the rest.
    let r = reference("scipy_reference.json");
    let mut read = 0;
    for (file, want) in r["files"].as_object().unwrap() {
        if !want["scipy_reads"].as_bool().unwrap() || want["header"]["frames_present"] != want["header"]["frames_by_header"] {
            continue;
        }
        let rec = read_audio(&fixtures().join("scipy").join(file), 60.0).unwrap_or_else(|e| panic!("{file}: {e}"));
        let ch = want["channels_scaled"].as_array().unwrap();
        assert_eq!(
            (rec.sample_rate as u64, rec.channels, rec.samples.len() as u64),
            (want["rate"].as_u64().unwrap(), ch.len(), want["frames"].as_u64().unwrap()),
            "{file}"
        );
        let first: Vec<Vec<f32>> = ch.iter().map(|c| floats(&c["first8"])).collect();
        for (i, v) in rec.samples.iter().take(first[0].len()).enumerate() {
            let mean = first.iter().map(|c| f64::from(c[i])).sum::<f64>() / ch.len() as f64;
            assert!((f64::from(*v) - mean).abs() < 1e-6, "{file}[{i}]: {v} vs {mean}");
        }
        let sum: f64 = rec.samples.iter().map(|v| f64::from(*v)).sum();
        let want_sum = ch.iter().map(|c| c["sum"].as_f64().unwrap()).sum::<f64>() / ch.len() as f64;
        assert!((sum - want_sum).abs() < 1e-4 * (1.0 + want_sum.abs()), "{file}: sum {sum} vs {want_sum}");
        read += 1;
    }
    assert_eq!(read, 10, "every file scipy reads whole");
}

#[test]
fn eight_channels_and_192_khz_are_read_as_scipy_reads_them() {
    let r = reference("bad/reference.json");
    for (file, want) in r["files"].as_object().unwrap() {
        let ours = signal(&fixtures().join("bad").join(file));
        assert_eq!(ours.len() as u64, want["length_16k"].as_u64().unwrap(), "{file}");
        for (i, v) in want["samples"].as_object().unwrap() {
            let i: usize = i.parse().unwrap();
            assert!((f64::from(ours[i]) - v.as_f64().unwrap()).abs() < 2e-6, "{file}[{i}]: {} vs {v}", ours[i]);
        }
        let sum: f64 = ours.iter().map(|v| f64::from(*v)).sum();
        assert!((sum - want["sum"].as_f64().unwrap()).abs() < 1e-3, "{file}: sum {sum} vs {}", want["sum"]);
    }
    let rec = read_audio(&fixtures().join("bad/eight_channels.wav"), 60.0).unwrap();
    assert_eq!((rec.channels, rec.sample_rate), (8, 16_000));
}

#[test]
fn a_job_skips_bad_files_lists_them_and_keeps_the_rest() {
    let model = depth_two();
    let dir = tempdir();
    let out = dir.join("mixed.parquet");
    let files: Vec<PathBuf> = ["bad/empty.wav", "short_0.1s_16k.wav", "bad/nan.wav", "bad/eight_channels.wav"].iter().map(|f| fixtures().join(f)).collect();
    let skipped = std::sync::Mutex::new(Vec::new());
    let on_skip = |s: &haidef_wsi::Skipped| skipped.lock().unwrap().push(s.path.clone());
    let s = AudioJob::new(files, &model, &out).on_skip(&on_skip).run().unwrap();
    assert_eq!((s.embedded, s.skipped.len()), (2, 2));
    assert_eq!(skipped.lock().unwrap().len(), 2);
    let rows = read_rows(&out);
    assert!(rows.path[0].ends_with("short_0.1s_16k.wav") && rows.padded[0] && (rows.end[0] - 0.1).abs() < 1e-9);
    assert!(rows.path[1].ends_with("eight_channels.wav") && rows.padded[1] && (rows.end[1] - 1.0).abs() < 1e-9 && rows.padded.len() == 2);
    let failed: Value = serde_json::from_str(&rows.meta["failed_files"]).unwrap();
    let failed = failed.as_array().unwrap();
    assert!(failed[0]["path"].as_str().unwrap().ends_with("empty.wav") && failed[1]["error"].as_str().unwrap().contains("NaN"), "{failed:?}");

    // Every file bad: the file is still written, and says why.
    let out = dir.join("none.parquet");
    let s = AudioJob::new(vec![fixtures().join("bad/not_audio.wav")], &model, &out).run().unwrap();
    assert_eq!(s.embedded, 0);
    assert!(read_rows(&out).meta["failed_files"].contains("not_audio.wav"));

    // Cancelled: an error, and no output file.
    let out = dir.join("cancelled.parquet");
    let stop = std::sync::atomic::AtomicBool::new(true);
    let err = AudioJob::new(vec![fixtures().join("speech_noise_16k.wav")], &model, &out).cancel(&stop).run().unwrap_err();
    assert!(err.to_string().to_lowercase().contains("cancel"), "{err}");
    assert!(!out.exists());

    // Not an audio model; a hop of no samples.
    let image_model = haidef_wsi::encoders::registry::find("path-foundation").unwrap().untrained(&Device::Cpu, DType::F32).unwrap();
    let err = AudioJob::new(vec![], image_model.as_ref(), dir.join("x.parquet")).run().unwrap_err().to_string();
    assert!(err.contains("not an audio model"), "{err}");
    let err = AudioJob::new(vec![], &model, dir.join("y.parquet")).options(AudioOptions::default().hop_seconds(0.0)).run().unwrap_err().to_string();
    assert!(err.contains("hop must be at least one sample"), "{err}");
}

/// A picture that cannot be written fails the job before its Parquet file is committed: an
/// error and no Parquet file, never an error beside a finished-looking file.
#[test]
fn a_picture_that_fails_leaves_no_parquet_file() {
    let model = depth_two();
    let dir = tempdir();
    let out = dir.join("with-picture.parquet");
    let png = dir.join("no-such-folder").join("audio.png");
    let err = AudioJob::new(vec![fixtures().join("short_0.1s_16k.wav")], &model, &out).picture(&png).run().unwrap_err().to_string();
    assert!(err.contains("no-such-folder/audio.png: cannot write"), "{err}");
    assert!(!out.exists(), "the Parquet file was committed by a job that failed");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with("with-picture")), "left behind: {left:?}");
}

/// On the GPU (built with `--features cuda`; tools/gpu_check.sh): the front end's matrix form
/// and the depth-2 model on CUDA against the references: f32 within the CPU's tolerances, bf16
/// with cosine ≥ 0.99.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_the_reference() {
    let r = reference("reference.json");
    let device = Device::new_cuda(0).expect("CUDA device 0");
    let fe = FrontEnd::new(FrontEndConfig::hear(), &device).unwrap();
    let cfg = haidef_wsi::encoders::VitConfig { depth: 2, ..hear::vit_config() };
    for f in files(&r) {
        let name = f["path"].as_str().unwrap();
        let mut clip = raw_f32(f["signal"]["file"].as_str().unwrap());
        clip.resize(32_000, 0.0);
        let x = Tensor::from_vec(clip, (1, 32_000), &device).unwrap();
        let image = fe.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let e = scaled_err(&image, &raw_f32(f["image"]["file"].as_str().unwrap()));
        eprintln!("cuda front end {name}: {e:.2e} of the peak");
        assert!(e < 2e-3, "{name}: {e}");
        for dtype in [DType::F32, DType::BF16] {
            let model = HearEncoder::untrained(hear::MODEL_ID, &cfg, hear::UNTRAINED_SEED, &device, dtype).unwrap();
            let ours = model.embed_clips(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want = floats(&f["windows"][0]["embedding"]);
            let dot: f64 = ours.iter().zip(&want).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let norm = |v: &[f32]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            let cos = dot / (norm(&ours) * norm(&want));
            let d = max_abs(&ours, &want);
            eprintln!("cuda {dtype:?} {name}: max |diff| {d:.2e}, cosine {cos:.6}");
            if dtype == DType::F32 {
                assert!(d < 2e-2, "{name}: {d}");
            } else {
                assert!(cos >= 0.99, "{name}: cosine {cos}");
            }
        }
    }
}
