//! The seeded random numbers of splits, subsets and bootstrap resamples: SplitMix64 (Steele,
//! Lea and Flood 2014), written out here because it is eight lines and a reference script in
//! another language must draw the same resamples (fixtures/probes/make_reference.py does).

/// SplitMix64: one 64-bit state, one number per step.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (the high half of a 128-bit product: Lemire's method without the
    /// rejection step; its bias is below 2⁻³² for the sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A number in [0, 1) with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Shuffles `v` in place (Fisher–Yates, from the end).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn splitmix64_matches_rand_xoshiro() {
        use rand_xoshiro::rand_core::{RngCore, SeedableRng};
        for seed in [0u64, 1, 1234567, u64::MAX] {
            let mut ours = super::SplitMix64::new(seed);
            let mut theirs = rand_xoshiro::SplitMix64::seed_from_u64(seed);
            for _ in 0..100 {
                assert_eq!(ours.next_u64(), theirs.next_u64());
            }
        }
    }
}
