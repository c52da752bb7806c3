//! `haidef-seeded-v1`: deterministic pseudo-random weights, generated bit-for-bit the same in
//! Rust (here) and in Python (`fixtures/encoders/seeded_weights.py`), so that a model with no
//! real checkpoint still runs, and so that tests can compare against PyTorch without shipping
//! 88 MB of weights.
//!
//! For a tensor with (timm) name `name`, element `i` (row-major), and seed `seed`:
//! `bits = splitmix64(fnv1a64(name) + seed + i)`, `v = (bits >> 40) * 2^-23 - 1` in [-1, 1),
//! then, in f32, the first rule that applies: `cls_token` and `pos_embed` `0.02 v`; weights
//! with ≥ 2 dims `v * sqrt(3 / fan_in)` (fan_in = product of all dims but the first); LayerNorm weights (`...norm...weight`) `1 + 0.1 v`; everything else `0.02 v`.

/// 64-bit FNV-1a of the bytes.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// SplitMix64's output function applied to `x`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The values of tensor `name` with `shape`, per haidef-seeded-v1.
pub fn seeded_tensor(name: &str, shape: &[usize], seed: u64) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let base = fnv1a64(name.as_bytes()).wrapping_add(seed);
    let last = name.rsplit('.').next().unwrap_or(name);
    let map: Box<dyn Fn(f32) -> f32> = if name == "cls_token" || name == "pos_embed" {
        Box::new(|v| v * 0.02f32)
    } else if shape.len() >= 2 {
        let fan_in: usize = shape[1..].iter().product();
        let a = (3.0f32 / fan_in as f32).sqrt();
        Box::new(move |v| v * a)
    } else if last == "weight" && name.contains("norm") {
        Box::new(|v| 1.0f32 + 0.1f32 * v)
    } else {
        Box::new(|v| v * 0.02f32)
    };
    (0..n as u64)
        .map(|i| {
            let bits = splitmix64(base.wrapping_add(i));
            map((bits >> 40) as f32 * (1.0f32 / 8_388_608.0) - 1.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // FNV-1a and SplitMix64 test vectors from their published definitions.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(splitmix64(0), 0xe220a8397b1dcdaf);
        // LayerNorm weights stay near 1, biases near 0, matrices within sqrt(3 / fan_in).
        assert!(seeded_tensor("norm.weight", &[8], 1).iter().all(|v| (0.9..=1.1).contains(v)));
        assert!(seeded_tensor("blocks.0.attn.qkv.bias", &[8], 1).iter().all(|v| v.abs() <= 0.02));
        let a = (3.0f32 / 384.0).sqrt();
        assert!(seeded_tensor("blocks.0.mlp.fc1.weight", &[4, 384], 1).iter().all(|v| v.abs() <= a));
        assert_ne!(seeded_tensor("x.weight", &[2, 2], 1), seeded_tensor("x.weight", &[2, 2], 2));
    }
}
