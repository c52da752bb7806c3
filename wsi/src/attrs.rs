//! Typed access to DICOM attributes with errors that name the file and the tag.

use crate::error::{Location, Result, TagName, WsiError};
use dicom_core::header::HasLength;
use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// Builds a [`TagName`] for `tag`, looking its keyword up in the standard dictionary.
pub(crate) fn tag_name(tag: Tag) -> TagName {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    let name = dicom_dictionary_std::StandardDataDictionary.by_tag(tag).map(|e| e.alias()).unwrap_or("UnknownTag");
    TagName { tag, name }
}

/// Attribute reader bound to one dataset (or nested item) and the location it came from.
pub(crate) struct Attrs<'a> {
    pub obj: &'a InMemDicomObject,
    pub location: &'a Location,
}

impl<'a> Attrs<'a> {
    pub fn new(obj: &'a InMemDicomObject, location: &'a Location) -> Self {
        Attrs { obj, location }
    }

    fn invalid(&self, tag: Tag, problem: impl Into<String>) -> WsiError {
        WsiError::InvalidAttribute { location: self.location.clone(), tag: tag_name(tag), problem: problem.into() }
    }

    fn missing(&self, tag: Tag) -> WsiError {
        WsiError::MissingAttribute { location: self.location.clone(), tag: tag_name(tag) }
    }

    /// Trimmed string value, `None` when absent or empty.
    pub fn opt_str(&self, tag: Tag) -> Result<Option<String>> {
        match self.obj.get(tag) {
            None => Ok(None),
            Some(e) if e.is_empty() => Ok(None),
            Some(e) => e
                .to_str()
                .map(|s| Some(s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string()))
                .map_err(|err| self.invalid(tag, format!("expected text: {err}"))),
        }
    }

    /// Required trimmed string value.
    pub fn str(&self, tag: Tag) -> Result<String> {
        self.opt_str(tag)?.ok_or_else(|| self.missing(tag))
    }

    /// All values of a multi-valued text attribute, trimmed.
    pub fn strs(&self, tag: Tag) -> Result<Vec<String>> {
        match self.obj.get(tag) {
            None => Ok(Vec::new()),
            Some(e) => e
                .to_multi_str()
                .map(|v| v.iter().map(|s| s.trim().to_string()).collect())
                .map_err(|err| self.invalid(tag, format!("expected text values: {err}"))),
        }
    }

    /// Optional integer value.
    pub fn opt_i64(&self, tag: Tag) -> Result<Option<i64>> {
        match self.obj.get(tag) {
            None => Ok(None),
            Some(e) if e.is_empty() => Ok(None),
            Some(e) => e.to_int::<i64>().map(Some).map_err(|err| self.invalid(tag, format!("expected an integer: {err}"))),
        }
    }

    /// Required integer value.
    pub fn i64(&self, tag: Tag) -> Result<i64> {
        self.opt_i64(tag)?.ok_or_else(|| self.missing(tag))
    }

    /// Required positive integer that fits in u32.
    pub fn positive_u32(&self, tag: Tag) -> Result<u32> {
        let v = self.i64(tag)?;
        u32::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| self.invalid(tag, format!("expected a positive integer, found {v}")))
    }

    /// Optional multi-valued float attribute (DS/FL/FD).
    pub fn opt_floats(&self, tag: Tag) -> Result<Option<Vec<f64>>> {
        match self.obj.get(tag) {
            None => Ok(None),
            Some(e) if e.is_empty() => Ok(None),
            Some(e) => e.to_multi_float64().map(Some).map_err(|err| self.invalid(tag, format!("expected decimal numbers: {err}"))),
        }
    }

    /// Items of a sequence attribute; empty when absent.
    pub fn items(&self, tag: Tag) -> &'a [InMemDicomObject] {
        self.obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
    }

    /// First item of a sequence attribute, if any.
    pub fn first_item(&self, tag: Tag) -> Option<&'a InMemDicomObject> {
        self.items(tag).first()
    }

    /// An error about this attribute, for checks done by the caller.
    pub fn error(&self, tag: Tag, problem: impl Into<String>) -> WsiError {
        self.invalid(tag, problem)
    }
}
