//! The SigLIP tokenizer against the versions Google's MedSigLIP serving pins (transformers
//! 4.51.3's slow `SiglipTokenizer` over sentencepiece 0.2.1: `input_ids_serving` in
//! fixtures/medsiglip/reference.json, made by serving_ids.py), on a unigram model trained with
//! sentencepiece: the 64 ids per prompt must be identical — capitals, punctuation, Unicode,
//! special tokens in the text, byte fallback, exact ties and prompts longer than 64 tokens.
//! Normalised text and plain SentencePiece ids are checked too (against sentencepiece 0.2.3,
//! where it agrees with 0.2.1).

use haidef_wsi_encoders::{SiglipTokenizer, SpmModel, Unigram};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/medsiglip")
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn ids_match_transformers_for_every_prompt() {
    let r = reference();
    let tok = SiglipTokenizer::open(&fixtures().join("spiece.model"), 64).unwrap();
    let plain = Unigram::new(SpmModel::open(&fixtures().join("spiece.model")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let cases = r["tokenizer"]["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let name = case["name"].as_str().unwrap_or(text);
        // SentencePiece alone, on the canonical text (0.2.3; it breaks some ties unlike 0.2.1).
        let versions_agree = case["serving_equals_5x"].as_bool().expect("reference made with serving_ids.py");
        if let (Some(canonical), Some(norm), true) = (case["canonical"].as_str(), case["spm_normalized"].as_str(), versions_agree) {
            let ours = plain.normalize(canonical);
            if ours != norm {
                failures.push(format!("{name}: normalised {ours:?}, sentencepiece {norm:?}"));
            }
            if let Some(want_plain) = case.get("spm_plain_ids") {
                let ours = plain.encode(canonical);
                if ours != ids(want_plain) {
                    failures.push(format!("{name}: sentencepiece ids {:?}, ours {ours:?}", ids(want_plain)));
                }
            }
        }
        let want = ids(&case["input_ids_serving"]);
        let got = tok.encode(text);
        if got != want {
            failures.push(format!("{name} {text:?}: serving {want:?}\n   ours {got:?}"));
        }
    }
    if let Some(random) = r["tokenizer"]["random_cases"].as_array() {
        for case in random {
            let text = case["text"].as_str().unwrap();
            let want = ids(&case["input_ids_serving"]);
            let got = tok.encode(text);
            if got != want {
                failures.push(format!("random {text:?}: serving {want:?}\n   ours {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn bad_model_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("haidef-spm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("nope.model");
    let err = SiglipTokenizer::open(&missing, 64).unwrap_err().to_string();
    assert!(err.contains("nope.model") && err.contains("cannot read"), "{err}");
    let junk = dir.join("junk.model");
    std::fs::write(&junk, b"\xff\xff\xff not a protobuf").unwrap();
    let err = SiglipTokenizer::open(&junk, 64).unwrap_err().to_string();
    assert!(err.contains("junk.model") && err.contains("not a SentencePiece model"), "{err}");
    // A model file cut short.
    let whole = std::fs::read(fixtures().join("spiece.model")).unwrap();
    let cut = dir.join("cut.model");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let err = SiglipTokenizer::open(&cut, 64).unwrap_err().to_string();
    assert!(err.contains("cut.model"), "{err}");
}
