//! Optional colour management before embedding: the slide's ICC profile (from its
//! OpticalPathSequence) → sRGB, with LittleCMS (lcms2), as Path Foundation's serving offers,
//! and the other targets its server takes (Adobe RGB (1998), ROMM RGB), perceptual intent as
//! Google's server builds them (EZ-WSI `image_util.py`, Pillow's ImageCms).

use crate::error::{PipelineError, Result};
use lcms2::{CIExyY, CIExyYTRIPLE, DisallowCache, Flags, GlobalContext, Intent, PixelFormat, Profile, ToneCurve, Transform};

/// A profile → sRGB transform that can be shared between threads.
pub struct ToSrgb {
    transform: Transform<[u8; 3], [u8; 3], GlobalContext, DisallowCache>,
    /// Description of the source profile, for metadata.
    pub source: String,
}

impl std::fmt::Debug for ToSrgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToSrgb").field("source", &self.source).finish()
    }
}

impl ToSrgb {
    /// Builds the transform from an ICC profile's bytes (perceptual intent).
    pub fn from_icc(icc: &[u8]) -> Result<Self> {
        let profile = Profile::new_icc(icc).map_err(|source| PipelineError::Icc { what: "the slide's ICC profile cannot be read", source })?;
        let name = profile.info(lcms2::InfoType::Description, lcms2::Locale::none()).unwrap_or_else(|| "unnamed".into());
        ToSrgb::from_profile(&profile, format!("{name} ({} bytes)", icc.len()))
    }

    /// Builds the transform from a profile.
    pub fn from_profile(profile: &Profile, source: String) -> Result<Self> {
        let transform = Transform::new_flags_context(
            GlobalContext::new(),
            profile,
            PixelFormat::RGB_8,
            &Profile::new_srgb(),
            PixelFormat::RGB_8,
            Intent::Perceptual,
            Flags::NO_CACHE,
        )
        .map_err(|source| PipelineError::Icc { what: "cannot build an ICC → sRGB transform", source })?;
        Ok(ToSrgb { transform, source })
    }

    /// Builds the transform from one ICC profile to another (both as bytes; perceptual intent).
    pub fn between(source: &[u8], target: &[u8]) -> Result<Self> {
        let to = Profile::new_icc(target).map_err(|source| PipelineError::Icc { what: "the target ICC profile cannot be read", source })?;
        ToSrgb::to_profile(source, &to)
    }

    /// Builds the transform from an ICC profile (bytes) to `target` (perceptual intent).
    pub fn to_profile(source: &[u8], to: &Profile) -> Result<Self> {
        let from = Profile::new_icc(source).map_err(|source| PipelineError::Icc { what: "the image's ICC profile cannot be read", source })?;
        let name = from.info(lcms2::InfoType::Description, lcms2::Locale::none()).unwrap_or_else(|| "unnamed".into());
        let transform =
            Transform::new_flags_context(GlobalContext::new(), &from, PixelFormat::RGB_8, to, PixelFormat::RGB_8, Intent::Perceptual, Flags::NO_CACHE)
                .map_err(|source| PipelineError::Icc { what: "cannot build an ICC transform between these profiles", source })?;
        Ok(ToSrgb { transform, source: format!("{name} ({} bytes)", source.len()) })
    }

    /// Converts RGB8 pixels in place.
    pub fn apply(&self, rgb: &mut [u8]) {
        let pixels: &mut [[u8; 3]] = bytemuck::cast_slice_mut(rgb);
        self.transform.transform_in_place(pixels);
    }
}

/// Adobe RGB (1998) from its published definition: D65 white, its primaries, gamma 563/256.
pub fn adobe_rgb() -> Profile {
    let d65 = CIExyY { x: 0.3127, y: 0.3290, Y: 1.0 };
    let primaries =
        CIExyYTRIPLE { Red: CIExyY { x: 0.64, y: 0.33, Y: 1.0 }, Green: CIExyY { x: 0.21, y: 0.71, Y: 1.0 }, Blue: CIExyY { x: 0.15, y: 0.06, Y: 1.0 } };
    let g = ToneCurve::new(563.0 / 256.0);
    Profile::new_rgb(&d65, &primaries, &[&g, &g, &g]).expect("a matrix/TRC profile from constants")
}

/// ROMM RGB (ProPhoto, ISO 22028-2) from its definition: D50 white, its primaries, gamma 1.8
/// with the linear segment below 1/512 (16·x; as LittleCMS's parametric curve type 4).
pub fn romm_rgb() -> Profile {
    let d50 = CIExyY { x: 0.3457, y: 0.3585, Y: 1.0 };
    let primaries = CIExyYTRIPLE {
        Red: CIExyY { x: 0.7347, y: 0.2653, Y: 1.0 },
        Green: CIExyY { x: 0.1596, y: 0.8404, Y: 1.0 },
        Blue: CIExyY { x: 0.0366, y: 0.0001, Y: 1.0 },
    };
    let g = ToneCurve::new_parametric(4, &[1.8, 1.0, 0.0, 1.0 / 16.0, 1.0 / 32.0]).expect("a parametric curve from constants");
    Profile::new_rgb(&d50, &primaries, &[&g, &g, &g]).expect("a matrix/TRC profile from constants")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adobe RGB → sRGB by the published matrices (Adobe RGB → XYZ D65 → linear sRGB) and the
    /// sRGB transfer curve: an independent reference for LittleCMS's result.
    fn by_hand(rgb: [u8; 3]) -> [f64; 3] {
        let lin: Vec<f64> = rgb.iter().map(|&v| (f64::from(v) / 255.0).powf(563.0 / 256.0)).collect();
        let m = [[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741], [0.0270343, 0.0706872, 0.9911085]];
        let xyz: Vec<f64> = m.iter().map(|r| r[0] * lin[0] + r[1] * lin[1] + r[2] * lin[2]).collect();
        let s = [[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]];
        let enc = |c: f64| {
            let c = c.clamp(0.0, 1.0);
            255.0 * if c <= 0.0031308 { 12.92 * c } else { 1.055 * c.powf(1.0 / 2.4) - 0.055 }
        };
        [0, 1, 2].map(|i| enc(s[i][0] * xyz[0] + s[i][1] * xyz[1] + s[i][2] * xyz[2]))
    }

    #[test]
    fn adobe_rgb_to_srgb_matches_the_matrices() {
        let t = ToSrgb::from_profile(&adobe_rgb(), "Adobe RGB".into()).unwrap();
        for px in [[128u8, 100, 80], [200, 150, 170], [90, 60, 140], [128, 128, 128]] {
            let mut v = px.to_vec();
            t.apply(&mut v);
            let want = by_hand(px);
            for c in 0..3 {
                assert!((f64::from(v[c]) - want[c]).abs() <= 2.0, "{px:?}: lcms {v:?}, matrices {want:?}");
            }
        }
    }

    #[test]
    fn srgb_profile_is_nearly_identity_and_bad_profiles_are_refused() {
        let srgb = Profile::new_srgb().icc().unwrap();
        let t = ToSrgb::from_icc(&srgb).unwrap();
        let mut v: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect();
        let orig = v.clone();
        t.apply(&mut v);
        assert!(v.iter().zip(&orig).all(|(a, b)| a.abs_diff(*b) <= 1));
        let err = ToSrgb::from_icc(b"not a profile").expect_err("refused");
        assert!(matches!(&err, PipelineError::Icc { .. }) && std::error::Error::source(&err).is_some(), "{err:?}");
        assert!(err.to_string().starts_with("the slide's ICC profile cannot be read: "), "{err}");
    }
}
