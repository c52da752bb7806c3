//! Path Foundation's serving API as data: a request body → checked instances, and results →
//! the response body, with Google's error codes (docs/SERVING_API.md has every rule and its
//! source). Parsing here does no I/O: fetching and embedding happen in [`super::server`].

use serde_json::{json, Map, Value};

/// Google's error codes, as the serving container emits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Code {
    InvalidRequestField,
    TooManyPatches,
    PatchDimensions,
    PatchOutsideImage,
    ImageDimension,
    EzWsiState,
    InvalidIccProfileTransform,
    Image,
    DicomPath,
    UnapprovedGcsBucket,
    UnapprovedDicomStore,
    InvalidCredentials,
    HttpError,
    InvalidResponse,
    DicomError,
    LevelNotFound,
    GcsImagePathFormat,
    DicomImageDownsamplingTooLarge,
}

impl Code {
    /// The code's string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequestField => "INVALID_REQUEST_FIELD_ERROR",
            Code::TooManyPatches => "TOO_MANY_PATCHES_ERROR",
            Code::PatchDimensions => "PATCH_DIMENSIONS_DO_NOT_MATCH_ENDPOINT_INPUT_DIMENSIONS_ERROR",
            Code::PatchOutsideImage => "PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR",
            Code::ImageDimension => "IMAGE_DIMENSION_ERROR",
            Code::EzWsiState => "EZ_WSI_STATE_ERROR",
            Code::InvalidIccProfileTransform => "INVALID_ICC_PROFILE_TRANSFORM_ERROR",
            Code::Image => "IMAGE_ERROR",
            Code::DicomPath => "DICOM_PATH_ERROR",
            Code::UnapprovedGcsBucket => "UNAPPROVED_GCS_BUCKET_ERROR",
            Code::UnapprovedDicomStore => "UNAPPROVED_DICOM_STORE_ERROR",
            Code::InvalidCredentials => "INVALID_CREDENTIALS_ERROR",
            Code::HttpError => "HTTP_ERROR",
            Code::InvalidResponse => "INVALID_RESPONSE_ERROR",
            Code::DicomError => "DICOM_ERROR",
            Code::LevelNotFound => "LEVEL_NOT_FOUND_ERROR",
            Code::GcsImagePathFormat => "GCS_IMAGE_PATH_FORMAT_ERROR",
            Code::DicomImageDownsamplingTooLarge => "DICOM_IMAGE_DOWNSAMPLING_TOO_LARGE_ERROR",
        }
    }
}

/// An error with its code and a description for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Google's code.
    pub code: Code,
    /// What was wrong (no secrets: never a token).
    pub description: String,
}

impl ApiError {
    /// An error of `code` saying `description`.
    pub fn new(code: Code, description: impl Into<String>) -> Self {
        ApiError { code, description: description.into() }
    }

    /// `{"code": …, "description": …}`, the description cut to 1,024 characters and left out
    /// when empty, as Google's server writes it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), json!(self.code.as_str()));
        if !self.description.is_empty() {
            m.insert("description".into(), json!(self.description.chars().take(1024).collect::<String>()));
        }
        Value::Object(m)
    }
}

/// One patch's rectangle; `width` and `height` are always the endpoint's patch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    /// Left edge in the source image's pixels (may be negative).
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Width.
    pub width: i64,
    /// Height.
    pub height: i64,
}

impl Patch {
    /// `{"x_origin", "y_origin", "width", "height"}`.
    pub fn to_json(self) -> Value {
        json!({"x_origin": self.x, "y_origin": self.y, "width": self.width, "height": self.height})
    }
}

/// Where an instance's pixels come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A DICOMweb series and the level's instances.
    Dicom {
        /// `series_path`.
        series_path: String,
        /// `instance_uids`.
        instance_uids: Vec<String>,
    },
    /// An encoded image (PNG, JPEG): `raw_image_bytes`, or EZ-WSI's `ez_wsi_state.image`.
    Image(Vec<u8>),
    /// EZ-WSI's per-patch PNGs (`ez_wsi_state.patches`), one per coordinate, and the source
    /// image's size.
    Patches {
        /// Encoded patches.
        patches: Vec<Vec<u8>>,
        /// `source_image_width_px`, `source_image_height_px`, when given.
        source_size: Option<(i64, i64)>,
    },
    /// An `image_file_uri` with no pixels in the request: to be fetched.
    Uri(String),
}

/// A checked instance.
#[derive(Clone)]
pub struct Instance {
    /// Its pixels' source.
    pub source: Source,
    /// The patches asked for.
    pub patches: Vec<Patch>,
    /// `bearer_token` (for the source only; never logged or echoed).
    pub bearer_token: String,
    /// `extensions.require_patches_fully_in_source_image` (default true).
    pub fully_inside: bool,
    /// `extensions.image_dimensions`: resize the source to this (width, height) first.
    pub image_dimensions: Option<(u32, u32)>,
    /// `extensions.transform_imaging_to_icc_profile`, upper-cased (`NONE` by default).
    pub icc_profile: String,
    /// For EZ-WSI's `ez_wsi_state.image`: the profile EZ-WSI already transformed the pixels to
    /// (`icc_profile_metadata_normalization`, upper-cased; `NONE`: the server transforms).
    pub ez_normalization: Option<String>,
}

impl std::fmt::Debug for Instance {
    /// Everything but the bearer token, which is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("source", &self.source)
            .field("patches", &self.patches)
            .field("bearer_token", &if self.bearer_token.is_empty() { "" } else { "<redacted>" })
            .field("fully_inside", &self.fully_inside)
            .field("image_dimensions", &self.image_dimensions)
            .field("icc_profile", &self.icc_profile)
            .field("ez_normalization", &self.ez_normalization)
            .finish()
    }
}

/// The request after parsing: per instance, the instance or its error. A request-level error
/// (Google answers those with HTTP 200 and `{"error": CODE}`) is the `Err`.
pub type Parsed = Result<Vec<Result<Instance, ApiError>>, ApiError>;

/// Integers (and integral floats, as Google's validate_int takes them) within ±2^31: pixel
/// coordinates and sizes, small enough that sums of two never overflow.
fn int(v: &Value) -> Option<i64> {
    const LIMIT: i64 = 1 << 31;
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64)).filter(|i| (-LIMIT..=LIMIT).contains(i))
}

fn field(what: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidRequestField, what)
}

/// Parses a request body's JSON (already known to be JSON) against the patch size the
/// endpoint takes and the most patches a request may hold.
pub fn parse_request(body: &Value, patch_size: i64, max_patches: usize) -> Parsed {
    let instances = body.get("instances").and_then(Value::as_array).ok_or_else(|| field("the request needs an \"instances\" list"))?;
    let mut out = Vec::with_capacity(instances.len());
    let mut total = 0usize;
    for (i, inst) in instances.iter().enumerate() {
        let obj = inst.as_object().ok_or_else(|| field(format!("instance {i} is not an object")))?;
        // Request-level checks first (Google fails the whole request on these).
        let patches = patch_coordinates(obj, i, patch_size)?;
        for key in ["dicom_path", "extensions"] {
            if obj.get(key).is_some_and(|v| !v.is_object()) {
                return Err(field(format!("instance {i}: {key} must be an object")));
            }
        }
        if obj.get("bearer_token").is_some_and(|v| !v.is_string()) {
            return Err(field(format!("instance {i}: bearer_token must be a string")));
        }
        total += patches.len();
        if total > max_patches {
            return Err(ApiError::new(Code::TooManyPatches, format!("more than {max_patches} patches in one request")));
        }
        out.push(instance(obj, patches));
    }
    Ok(out)
}

fn patch_coordinates(obj: &Map<String, Value>, i: usize, size: i64) -> Result<Vec<Patch>, ApiError> {
    let list = obj.get("patch_coordinates").and_then(Value::as_array).filter(|l| !l.is_empty());
    let list = list.ok_or_else(|| field(format!("instance {i}: patch_coordinates must be a non-empty list")))?;
    list.iter()
        .enumerate()
        .map(|(j, c)| {
            let c = c.as_object().ok_or_else(|| field(format!("instance {i}, patch {j}: not an object")))?;
            // The alphabetically first, whatever order the map keeps its keys in.
            if let Some(k) = c.keys().filter(|k| !matches!(k.as_str(), "x_origin" | "y_origin" | "width" | "height")).min() {
                return Err(field(format!("instance {i}, patch {j}: unknown key {k:?}")));
            }
            let get = |k: &str, default: Option<i64>| match c.get(k) {
                Some(v) => int(v).ok_or_else(|| field(format!("instance {i}, patch {j}: {k} must be an integer within ±2^31"))),
                None => default.ok_or_else(|| field(format!("instance {i}, patch {j}: {k} is missing"))),
            };
            let p = Patch { x: get("x_origin", None)?, y: get("y_origin", None)?, width: get("width", Some(size))?, height: get("height", Some(size))? };
            if (p.width, p.height) != (size, size) {
                return Err(ApiError::new(
                    Code::PatchDimensions,
                    format!("instance {i}, patch {j} is {}x{}; the endpoint takes {size}x{size}", p.width, p.height),
                ));
            }
            Ok(p)
        })
        .collect()
}

fn instance(obj: &Map<String, Value>, patches: Vec<Patch>) -> Result<Instance, ApiError> {
    let empty = Map::new();
    let ext = obj.get("extensions").and_then(Value::as_object).unwrap_or(&empty);
    let fully_inside = match ext.get("require_patches_fully_in_source_image") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(field("require_patches_fully_in_source_image must be true or false")),
    };
    // Google's rules: an empty or absent value means no resize; exactly width_px and height_px,
    // positive integers (sides over 10,000 are refused later, for images only).
    let image_dimensions = match ext.get("image_dimensions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) if d.is_empty() => None,
        Some(Value::Object(d)) => {
            if d.len() != 2 || !d.contains_key("width_px") || !d.contains_key("height_px") {
                return Err(field("image_dimensions takes exactly width_px and height_px"));
            }
            let dim = |k: &str| d.get(k).and_then(int).filter(|v| *v > 0).map(|v| v as u32);
            match (dim("width_px"), dim("height_px")) {
                (Some(w), Some(h)) => Some((w, h)),
                _ => return Err(field("image_dimensions: width_px and height_px must be positive integers")),
            }
        }
        Some(_) => return Err(field("image_dimensions must be an object")),
    };
    let icc_profile = match ext.get("transform_imaging_to_icc_profile") {
        None => "NONE".to_string(),
        Some(Value::String(s)) => {
            let s = s.to_ascii_uppercase();
            if !matches!(s.as_str(), "NONE" | "SRGB" | "ADOBERGB" | "ROMMRGB") {
                return Err(ApiError::new(Code::InvalidIccProfileTransform, format!("{s:?}: expected NONE, SRGB, ADOBERGB or ROMMRGB")));
            }
            s
        }
        Some(_) => return Err(field("transform_imaging_to_icc_profile must be a string")),
    };
    let state = match ext.get("ez_wsi_state") {
        None => None,
        Some(Value::Object(s)) => Some(s),
        Some(_) => return Err(ApiError::new(Code::EzWsiState, "ez_wsi_state must be an object")),
    };
    let source = source(obj, state, patches.len())?;
    let bearer_token = obj.get("bearer_token").and_then(Value::as_str).unwrap_or("").to_string();
    // OAuth access tokens are a few hundred bytes; the cap keeps them out of memory in bulk.
    if bearer_token.len() > 16 << 10 {
        return Err(field("bearer_token is longer than 16 KiB"));
    }
    let ez_normalization = match (state, &source) {
        (Some(state), Source::Image(_)) if obj.get("dicom_path").is_none() && obj.get("image_file_uri").is_some() => {
            match state.get("icc_profile_metadata_normalization") {
                None => Some("NONE".to_string()),
                Some(Value::String(n)) => Some(n.to_ascii_uppercase()),
                Some(_) => return Err(ApiError::new(Code::EzWsiState, "ez_wsi_state.icc_profile_metadata_normalization must be a string")),
            }
        }
        _ => None,
    };
    Ok(Instance { source, patches, bearer_token, fully_inside, image_dimensions, icc_profile, ez_normalization })
}

fn base64(s: &str, what: &str, code: Code) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|e| ApiError::new(code, format!("{what} is not base64: {e}")))
}

fn source(obj: &Map<String, Value>, state: Option<&Map<String, Value>>, n: usize) -> Result<Source, ApiError> {
    // Google's order of precedence: dicom_path, image_file_uri, raw_image_bytes.
    if let Some(d) = obj.get("dicom_path") {
        let series_path = d.get("series_path").and_then(Value::as_str).filter(|s| !s.is_empty());
        let uids: Option<Vec<String>> = d
            .get("instance_uids")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .and_then(|l| l.iter().map(|u| u.as_str().filter(|s| !s.is_empty()).map(str::to_string)).collect());
        return match (series_path, uids) {
            (Some(s), Some(u)) => Ok(Source::Dicom { series_path: s.to_string(), instance_uids: u }),
            _ => Err(ApiError::new(Code::DicomPath, "dicom_path needs a non-empty series_path and a non-empty list of instance_uids")),
        };
    }
    if let Some(uri) = obj.get("image_file_uri") {
        let uri = uri.as_str().filter(|s| !s.is_empty()).ok_or_else(|| field("image_file_uri must be a non-empty string"))?;
        if let Some(state) = state {
            if let Some(img) = state.get("image") {
                let img = img.as_str().ok_or_else(|| ApiError::new(Code::EzWsiState, "ez_wsi_state.image must be a base64 string"))?;
                return Ok(Source::Image(base64(img, "ez_wsi_state.image", Code::EzWsiState)?));
            }
            if let Some(p) = state.get("patches") {
                let list = p.as_array().ok_or_else(|| ApiError::new(Code::EzWsiState, "ez_wsi_state.patches must be a list"))?;
                if list.len() != n {
                    return Err(ApiError::new(Code::EzWsiState, format!("ez_wsi_state.patches holds {} images for {n} patch coordinates", list.len())));
                }
                let patches = list
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .ok_or_else(|| ApiError::new(Code::EzWsiState, "ez_wsi_state.patches must hold base64 strings"))
                            .and_then(|s| base64(s, "a patch", Code::EzWsiState))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let size = |k: &str| state.get(k).and_then(int);
                let source_size = size("source_image_width_px").zip(size("source_image_height_px"));
                return Ok(Source::Patches { patches, source_size });
            }
        }
        return Ok(Source::Uri(uri.to_string()));
    }
    if let Some(raw) = obj.get("raw_image_bytes") {
        let raw = raw.as_str().filter(|s| !s.is_empty()).ok_or_else(|| field("raw_image_bytes must be a non-empty base64 string"))?;
        return Ok(Source::Image(base64(raw, "raw_image_bytes", Code::InvalidRequestField)?));
    }
    Err(field("the instance names no source: give dicom_path, image_file_uri or raw_image_bytes"))
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON (Google's server answers 400).
    NotJson,
    /// The parts of the request the server reads would hold more than [`MAX_PARSED_BYTES`].
    TooComplex,
}

/// The most memory the parts of one request that the server reads may take once parsed
/// (strings, numbers, lists and objects of the contract's fields, counted at their in-memory
/// size). Google's largest legitimate request, 4,000 patch coordinates and a 64 MiB image, takes
/// about 70 MiB.
pub const MAX_PARSED_BYTES: usize = 256 << 20;

/// Reads a request body into the JSON value [`parse_request`] checks, keeping only the fields of
/// the contract: unknown fields (`"pad": [0, 0, …]`) are skipped as they are read, never stored,
/// and a list or object where the contract wants a single value is kept as an empty one (which
/// fails the same checks). The value gives the same answer from [`parse_request`] as the whole
/// body would, in at most [`MAX_PARSED_BYTES`] however the body is built (a generic JSON value
/// takes about 40 bytes per `0,` of a 2-byte list element: a 63 MiB body, 2.4 GB).
pub fn read_request(body: &[u8]) -> Result<Value, BodyError> {
    use serde::de::DeserializeSeed;
    let budget = Budget { left: std::cell::Cell::new(MAX_PARSED_BYTES), exceeded: std::cell::Cell::new(false) };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Keep { shape: REQUEST, budget: &budget }.deserialize(&mut de).and_then(|v| de.end().map(|_| v));
    match value {
        Ok(v) => Ok(v),
        Err(_) if budget.exceeded.get() => Err(BodyError::TooComplex),
        Err(_) => Err(BodyError::NotJson),
    }
}

/// What of a value is kept, by where it sits in the contract.
#[derive(Clone, Copy)]
enum Shape {
    /// A single value (string, number, boolean, null).
    Leaf,
    /// An object with these fields; with `first_unknown`, the (alphabetically) first unknown key
    /// is kept too (with a null value), for the checks that name it or count keys.
    Object { fields: &'static [(&'static str, Shape)], first_unknown: bool },
    /// A list of values of this shape.
    List(&'static Shape),
}

const LEAF: Shape = Shape::Leaf;
const PATCH: Shape = Shape::Object { fields: &[("x_origin", LEAF), ("y_origin", LEAF), ("width", LEAF), ("height", LEAF)], first_unknown: true };
const DICOM_PATH: Shape = Shape::Object { fields: &[("series_path", LEAF), ("instance_uids", Shape::List(&LEAF))], first_unknown: false };
const EZ_WSI_STATE: Shape = Shape::Object {
    fields: &[
        ("image", LEAF),
        ("patches", Shape::List(&LEAF)),
        ("icc_profile_metadata_normalization", LEAF),
        ("source_image_width_px", LEAF),
        ("source_image_height_px", LEAF),
    ],
    first_unknown: false,
};
const EXTENSIONS: Shape = Shape::Object {
    fields: &[
        ("require_patches_fully_in_source_image", LEAF),
        ("image_dimensions", Shape::Object { fields: &[("width_px", LEAF), ("height_px", LEAF)], first_unknown: true }),
        ("transform_imaging_to_icc_profile", LEAF),
        ("ez_wsi_state", EZ_WSI_STATE),
    ],
    first_unknown: false,
};
const INSTANCE: Shape = Shape::Object {
    fields: &[
        ("dicom_path", DICOM_PATH),
        ("image_file_uri", LEAF),
        ("raw_image_bytes", LEAF),
        ("bearer_token", LEAF),
        ("patch_coordinates", Shape::List(&PATCH)),
        ("extensions", EXTENSIONS),
    ],
    first_unknown: false,
};
const REQUEST: Shape = Shape::Object { fields: &[("instances", Shape::List(&INSTANCE))], first_unknown: false };

/// Bytes the kept value may still take.
struct Budget {
    left: std::cell::Cell<usize>,
    exceeded: std::cell::Cell<bool>,
}

impl Budget {
    /// Takes `bytes` from the budget, or fails the parse.
    fn charge<E: serde::de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("the request is too complex"))
            }
        }
    }
}

/// A value's in-memory size, and an object entry's (key and tree node, roughly).
const VALUE_BYTES: usize = std::mem::size_of::<Value>();
const ENTRY_BYTES: usize = VALUE_BYTES + 48;

/// A value read and checked as `serde_json::from_slice` checks it (numbers in range, strings
/// valid UTF-8 without lone surrogates, at most 128 levels deep), then dropped: nothing of it is
/// kept. (serde's `IgnoredAny` skips without these checks, so a body that is not valid JSON to
/// serde_json, e.g. `"pad": 1e400`, would have been answered instead of refused.)
struct Skip;

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> serde::de::Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Reads one value of `shape`.
struct Keep<'b> {
    shape: Shape,
    budget: &'b Budget,
}

impl<'de> serde::de::DeserializeSeed<'de> for Keep<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Keep<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.charge(VALUE_BYTES)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.charge(VALUE_BYTES)?;
        Ok(Value::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.charge(VALUE_BYTES)?;
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.charge(VALUE_BYTES)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.charge(VALUE_BYTES + v.len())?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.charge(VALUE_BYTES + v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.budget.charge(VALUE_BYTES)?;
        Ok(Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.charge(VALUE_BYTES)?;
        let mut out = Vec::new();
        match self.shape {
            Shape::List(inner) => {
                while let Some(v) = seq.next_element_seed(Keep { shape: *inner, budget: self.budget })? {
                    out.push(v);
                }
            }
            // A list where the contract wants something else: read, not kept.
            _ => while seq.next_element::<Skip>()?.is_some() {},
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.charge(VALUE_BYTES)?;
        let mut out = Map::new();
        let Shape::Object { fields, first_unknown } = self.shape else {
            while map.next_entry::<Skip, Skip>()?.is_some() {}
            return Ok(Value::Object(out));
        };
        let mut unknown: Option<String> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match fields.iter().find(|(name, _)| *name == key) {
                Some((name, shape)) => {
                    let v = map.next_value_seed(Keep { shape: *shape, budget: self.budget })?;
                    self.budget.charge(ENTRY_BYTES)?;
                    out.insert((*name).to_string(), v);
                }
                None => {
                    map.next_value::<Skip>()?;
                    if first_unknown && unknown.as_deref().is_none_or(|u| *key < *u) {
                        self.budget.charge(key.len())?;
                        unknown = Some(key.into_owned());
                    }
                }
            }
        }
        if let Some(k) = unknown {
            self.budget.charge(ENTRY_BYTES)?;
            out.insert(k, Value::Null);
        }
        Ok(Value::Object(out))
    }
}

/// One instance's answer: embeddings with their patches, or its error.
pub fn prediction(result: &Result<Vec<(Patch, Vec<f32>)>, ApiError>) -> Value {
    match result {
        Ok(rows) => {
            json!({"result": {"patch_embeddings": rows.iter().map(|(p, e)| json!({"embedding_vector": e, "patch_coordinate": p.to_json()})).collect::<Vec<_>>()}})
        }
        Err(e) => json!({"error": e.to_json()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Parsed {
        parse_request(&v, 224, 4000)
    }

    #[test]
    fn request_level_errors_fail_the_request() {
        assert_eq!(parse(json!({})).unwrap_err().code, Code::InvalidRequestField);
        assert_eq!(parse(json!({"instances": {}})).unwrap_err().code, Code::InvalidRequestField);
        let bad_size = json!({"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [{"x_origin": 0, "y_origin": 0, "width": 256}]}]});
        assert_eq!(parse(bad_size).unwrap_err().code, Code::PatchDimensions);
        for huge in [9_223_372_036_854_775_000i64, i64::MIN, -(1 << 31) - 1] {
            let body = json!({"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [{"x_origin": huge, "y_origin": 0}]}]});
            assert!(parse(body).unwrap_err().description.contains("x_origin must be an integer"), "{huge}");
        }
        let unknown = json!({"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [{"x_origin": 0, "y_origin": 0, "z": 1}]}]});
        assert!(parse(unknown).unwrap_err().description.contains("\"z\""));
        let many: Vec<Value> = (0..4001).map(|i| json!({"x_origin": i, "y_origin": 0})).collect();
        assert_eq!(parse(json!({"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": many}]})).unwrap_err().code, Code::TooManyPatches);
        assert!(parse(json!({"instances": []})).unwrap().is_empty());
    }

    #[test]
    fn instance_errors_fail_only_their_instance() {
        let p = json!([{"x_origin": 1.0, "y_origin": -3}]);
        let r = parse(json!({"instances": [
            {"raw_image_bytes": "AA==", "patch_coordinates": p, "extensions": {"require_patches_fully_in_source_image": "False", "transform_imaging_to_icc_profile": "srgb"}},
            {"raw_image_bytes": "AA==", "patch_coordinates": p, "extensions": {"transform_imaging_to_icc_profile": "DISPLAYP3"}},
            {"patch_coordinates": p},
            {"image_file_uri": "gs:///placeholder.png", "patch_coordinates": p, "extensions": {"ez_wsi_state": {"patches": ["AA==", "AA=="]}}},
            {"raw_image_bytes": "AA==", "patch_coordinates": p, "extensions": {"require_patches_fully_in_source_image": "yes"}},
        ]}))
        .unwrap();
        let first = r[0].as_ref().unwrap();
        assert_eq!((first.patches[0].x, first.patches[0].y, first.fully_inside, first.icc_profile.as_str()), (1, -3, false, "SRGB"));
        assert_eq!(first.source, Source::Image(vec![0]));
        assert_eq!(r[1].as_ref().unwrap_err().code, Code::InvalidIccProfileTransform);
        assert!(r[2].as_ref().unwrap_err().description.contains("names no source"));
        assert_eq!(r[3].as_ref().unwrap_err().code, Code::EzWsiState);
        assert_eq!(r[4].as_ref().unwrap_err().code, Code::InvalidRequestField);
    }

    /// The answer parse_request gives, as text (Instance has no PartialEq).
    fn answer_of(v: Value) -> String {
        format!("{:?}", parse(v))
    }

    #[test]
    fn the_kept_parts_give_the_answer_the_whole_body_gives() {
        let p = r#"[{"x_origin": 1, "y_origin": 2}]"#;
        let bodies = [
            r#"{}"#.to_string(),
            r#"null"#.to_string(),
            r#"[1, 2]"#.to_string(),
            r#"{"instances": {"a": 1}}"#.to_string(),
            r#"{"instances": "x"}"#.to_string(),
            r#"{"instances": [], "pad": [0, 0, {"a": [1]}]}"#.to_string(),
            r#"{"instances": [7, {"raw_image_bytes": "AA=="}]}"#.to_string(),
            format!(r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "extra": [1, 2, 3]}}]}}"#),
            format!(r#"{{"instances": [{{"raw_image_bytes": ["AA=="], "patch_coordinates": {p}}}]}}"#),
            format!(r#"{{"instances": [{{"raw_image_bytes": {{"a": "AA=="}}, "patch_coordinates": {p}}}]}}"#),
            r#"{"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [{"x_origin": 1, "y_origin": 2, "zz": 1, "b": [0], "c": 2}]}]}"#.to_string(),
            r#"{"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [{"x_origin": [1], "y_origin": 2}]}]}"#.to_string(),
            r#"{"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [{"x_origin": 1.0, "y_origin": 2e0, "width": 224.0}]}]}"#.to_string(),
            r#"{"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [[1, 2]]}]}"#.to_string(),
            format!(r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "extensions": {{"image_dimensions": {{"a": 1}}}}}}]}}"#),
            format!(
                r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "extensions": {{"image_dimensions": {{"width_px": 5, "height_px": 6, "q": 1}}}}}}]}}"#
            ),
            format!(
                r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "extensions": {{"image_dimensions": {{"width_px": 5, "height_px": 6}}, "pad": [0]}}}}]}}"#
            ),
            format!(r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "extensions": {{"image_dimensions": [5, 6]}}}}]}}"#),
            format!(
                r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "extensions": {{"transform_imaging_to_icc_profile": ["SRGB"]}}}}]}}"#
            ),
            format!(r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "extensions": "x"}}]}}"#),
            format!(r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}, "bearer_token": ["t"]}}]}}"#),
            format!(
                r#"{{"instances": [{{"dicom_path": {{"series_path": "http://x/studies/1/series/2", "instance_uids": ["1.2", "1.3"], "pad": 1}}, "patch_coordinates": {p}}}]}}"#
            ),
            format!(r#"{{"instances": [{{"dicom_path": {{"series_path": "http://x", "instance_uids": [["1.2"]]}}, "patch_coordinates": {p}}}]}}"#),
            format!(r#"{{"instances": [{{"dicom_path": [], "patch_coordinates": {p}}}]}}"#),
            format!(
                r#"{{"instances": [{{"image_file_uri": "gs://bucket/a.png", "patch_coordinates": {p}, "extensions": {{"ez_wsi_state": {{"patches": ["AA=="], "source_image_width_px": 9, "source_image_height_px": 9, "x": [1]}}}}}}]}}"#
            ),
            format!(
                r#"{{"instances": [{{"image_file_uri": "gs://bucket/a.png", "patch_coordinates": {p}, "extensions": {{"ez_wsi_state": {{"image": "AA==", "icc_profile_metadata_normalization": "srgb"}}}}}}]}}"#
            ),
            format!(
                r#"{{"instances": [{{"image_file_uri": "gs://bucket/a.png", "patch_coordinates": {p}, "extensions": {{"ez_wsi_state": {{"patches": {{"a": 1}}}}}}}}]}}"#
            ),
            format!(r#"{{"instances": [{{"raw_image_bytes": "AA==", "patch_coordinates": {p}}}], "instances": []}}"#),
        ];
        for body in &bodies {
            let whole: Value = serde_json::from_str(body).unwrap();
            let kept = read_request(body.as_bytes()).unwrap();
            assert_eq!(answer_of(kept), answer_of(whole), "{body}");
        }
    }

    #[test]
    fn fields_outside_the_contract_are_not_kept() {
        let pad = format!(r#"{{"instances": [], "pad": [{}0]}}"#, "0,".repeat(1 << 20));
        assert_eq!(read_request(pad.as_bytes()).unwrap(), json!({"instances": []}));
        let nested = r#"{"instances": [{"raw_image_bytes": [0, 0, 0], "extensions": {"ez_wsi_state": {"pad": [0, 0]}, "pad": {"a": [0]}}}]}"#;
        assert_eq!(read_request(nested.as_bytes()).unwrap(), json!({"instances": [{"raw_image_bytes": [], "extensions": {"ez_wsi_state": {}}}]}));
    }

    #[test]
    fn bodies_that_are_not_json_or_too_complex_are_refused() {
        let deep = format!(r#"{{"instances": [], "pad": {}0{}}}"#, "[".repeat(200), "]".repeat(200));
        let not_json: Vec<&[u8]> = vec![
            b"",
            b"{",
            b"{} x",
            b"{\"instances\": [}",
            b"\xff",
            // Where nothing is kept, still checked as serde_json checks (these are not JSON to it).
            br#"{"instances": [], "pad": 1e400}"#,
            br#"{"instances": [], "pad": "\ud800"}"#,
            b"{\"instances\": [], \"pad\": \"\xff\"}",
            br#"{"instances": [{"raw_image_bytes": [1e400]}]}"#,
            deep.as_bytes(),
        ];
        for bad in not_json {
            assert!(serde_json::from_slice::<Value>(bad).is_err(), "{}", String::from_utf8_lossy(bad));
            assert_eq!(read_request(bad), Err(BodyError::NotJson), "{}", String::from_utf8_lossy(bad));
        }
        // 2-byte numbers where the contract keeps them, each a 32-byte value: past the budget.
        let n = MAX_PARSED_BYTES / VALUE_BYTES + 1;
        let body = format!(r#"{{"instances": [{{"patch_coordinates": [{}0]}}]}}"#, "0,".repeat(n));
        assert_eq!(read_request(body.as_bytes()), Err(BodyError::TooComplex));
    }

    #[test]
    fn errors_serialise_as_google_writes_them() {
        let long = "x".repeat(2000);
        let j = ApiError::new(Code::Image, long).to_json();
        assert_eq!(j["code"], "IMAGE_ERROR");
        assert_eq!(j["description"].as_str().unwrap().len(), 1024);
        assert!(ApiError::new(Code::Image, "").to_json().get("description").is_none());
    }
}
