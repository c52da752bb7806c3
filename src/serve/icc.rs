//! `transform_imaging_to_icc_profile`: the target profiles (SRGB, ADOBERGB, ROMMRGB) and the
//! transform from a source's own profile to one of them, as Google's server does it
//! (perceptual intent; no transform when the target is NONE or the source has no profile).
//!
//! Google's server reads its targets from ICC files bundled with EZ-WSI. By default this server
//! uses profiles built from the published definitions (LittleCMS's sRGB, and
//! [`crate::adobe_rgb`], [`crate::romm_rgb`]); `--icc-profile NAME=FILE` gives
//! a file instead, e.g. the very files Google's server uses, for bit-equal colours.

use super::api::{ApiError, Code};
use crate::slide::{adobe_rgb, romm_rgb, ToSrgb};
use lcms2::Profile;

/// The three target profiles: a file's bytes, or None for the built-in one (SRGB then gives the
/// same pixels as the slide pipeline's `--icc-to-srgb`).
#[derive(Clone, Default)]
pub struct IccTargets {
    srgb: Option<Vec<u8>>,
    adobe_rgb: Option<Vec<u8>>,
    romm_rgb: Option<Vec<u8>>,
}

impl std::fmt::Debug for IccTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = |t: &Option<Vec<u8>>| t.as_ref().map_or("built-in".to_string(), |b| format!("file of {} B", b.len()));
        write!(f, "IccTargets {{ SRGB: {}, ADOBERGB: {}, ROMMRGB: {} }}", d(&self.srgb), d(&self.adobe_rgb), d(&self.romm_rgb))
    }
}

impl IccTargets {
    /// Replaces target `name` (SRGB, ADOBERGB or ROMMRGB, any case) by the profile in `icc`.
    pub fn set(&mut self, name: &str, icc: Vec<u8>) -> Result<(), String> {
        Profile::new_icc(&icc).map_err(|e| format!("not an ICC profile: {e}"))?;
        match name.to_ascii_uppercase().as_str() {
            "SRGB" => self.srgb = Some(icc),
            "ADOBERGB" => self.adobe_rgb = Some(icc),
            "ROMMRGB" => self.romm_rgb = Some(icc),
            other => return Err(format!("{other:?} is not a target: expected SRGB, ADOBERGB or ROMMRGB")),
        }
        Ok(())
    }

    /// The transform from `source` (a profile's bytes) to `target` (NONE, SRGB, ADOBERGB or
    /// ROMMRGB, upper case), or None when there is nothing to do; a source profile that cannot
    /// be used is an error of `code`.
    pub fn transform(&self, target: &str, source: Option<&[u8]>, code: Code) -> Result<Option<ToSrgb>, ApiError> {
        let (file, builtin): (&Option<Vec<u8>>, fn() -> Profile) = match target {
            "SRGB" => (&self.srgb, Profile::new_srgb),
            "ADOBERGB" => (&self.adobe_rgb, adobe_rgb),
            "ROMMRGB" => (&self.romm_rgb, romm_rgb),
            _ => return Ok(None),
        };
        let Some(from) = source.filter(|s| !s.is_empty()) else { return Ok(None) };
        let t = match file {
            Some(bytes) => ToSrgb::between(from, bytes),
            None => ToSrgb::to_profile(from, &builtin()),
        };
        t.map(Some).map_err(|e| ApiError::new(code, format!("ICC transform to {target}: {e}")))
    }
}
