//! `multipart/related` bodies as DICOMweb servers send them (WADO-RS frames, bulk data).
//!
//! Servers differ, so the parser is lenient about form and strict about content: Orthanc puts the
//! transfer syntax inside the quoted `type` parameter, uses ~72-character boundaries, sends no
//! Content-Length for the whole body but one per part; others put `transfer-syntax` beside
//! `type`, quote the boundary, or omit part lengths. Bodies are binary and may contain CRLF and
//! `--`, so a part's `Content-Length` is trusted when present and checked against the next
//! delimiter. A body that ends before its closing delimiter is an error (a dropped connection
//! must not look like a complete answer).

/// The parameters of a `multipart/related` Content-Type header that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MultipartType {
    /// The boundary, without quotes or leading dashes.
    pub boundary: String,
    /// The media type of the parts (`type` parameter), without its own parameters.
    pub part_type: Option<String>,
    /// Transfer syntax UID, from a `transfer-syntax` parameter either beside `type` or inside it.
    pub transfer_syntax: Option<String>,
}

/// Splits `a=b; c="d; e"` into (name, value) pairs, honouring quotes.
fn parameters(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.trim().is_empty() {
        let rest_trim = rest.trim_start_matches([';', ' ', '\t']);
        let Some(eq) = rest_trim.find('=') else { break };
        let name = rest_trim[..eq].trim().to_ascii_lowercase();
        let after = rest_trim[eq + 1..].trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((name, value));
        rest = tail;
    }
    out
}

/// Parses a `multipart/related` Content-Type header.
pub fn parse_content_type(header: &str) -> Result<MultipartType, String> {
    let (media, params) = header.split_once(';').unwrap_or((header, ""));
    if !media.trim().eq_ignore_ascii_case("multipart/related") {
        return Err(format!("expected a multipart/related response, got Content-Type {header:?}"));
    }
    let params = parameters(params);
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let boundary = get("boundary").filter(|b| !b.is_empty()).ok_or_else(|| format!("no boundary in Content-Type {header:?}"))?;
    let mut transfer_syntax = get("transfer-syntax");
    let part_type = get("type").map(|t| {
        let (media, inner) = t.split_once(';').unwrap_or((&t, ""));
        if transfer_syntax.is_none() {
            transfer_syntax = parameters(inner).into_iter().find(|(k, _)| k == "transfer-syntax").map(|(_, v)| v);
        }
        media.trim().to_ascii_lowercase()
    });
    Ok(MultipartType { boundary, part_type, transfer_syntax })
}

/// One part: its headers (names lower-cased) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Part {
    /// Header (name, value) pairs, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The bytes of the part.
    pub body: Vec<u8>,
}

impl Part {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The media type of the part's Content-Type, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }

    /// The `transfer-syntax` parameter of the part's Content-Type (servers may label each part
    /// rather than, or as well as, the whole answer).
    pub fn transfer_syntax(&self) -> Option<String> {
        let ct = self.header("content-type")?;
        let (_, params) = ct.split_once(';')?;
        parameters(params).into_iter().find(|(k, _)| k == "transfer-syntax").map(|(_, v)| v)
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Splits a `multipart/related` body into its parts.
pub fn parse_body(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}").into_bytes();
    let mut pos = find(body, &delim, 0).ok_or("the body has no opening boundary")?;
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return Ok(parts); // closing delimiter
        }
        // Rest of the delimiter line.
        let line_end = find(body, b"\n", pos).ok_or("the body ends inside a boundary line: truncated?")?;
        let mut cursor = line_end + 1;
        // Headers up to an empty line.
        let mut headers = Vec::new();
        loop {
            let end = find(body, b"\n", cursor).ok_or_else(|| format!("part {}: the body ends inside its headers: truncated?", parts.len() + 1))?;
            let line = String::from_utf8_lossy(&body[cursor..end]).trim_end_matches('\r').to_string();
            cursor = end + 1;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| format!("part {}: malformed header line {line:?}", parts.len() + 1))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let n = parts.len() + 1;
        let length = match headers.iter().find(|(k, _)| k == "content-length") {
            Some((_, v)) => Some(v.parse::<usize>().map_err(|_| format!("part {n}: Content-Length {v:?} is not a number"))?),
            None => None,
        };
        let (body_end, next) = match length {
            Some(len) => {
                let end = cursor
                    .checked_add(len)
                    .filter(|e| *e <= body.len())
                    .ok_or_else(|| format!("part {n}: Content-Length {len} runs past the end of the body ({} bytes left): truncated?", body.len() - cursor))?;
                // The delimiter must follow, after an optional CRLF.
                let mut d = end;
                for eol in [&b"\r\n"[..], &b"\n"[..]] {
                    if body[d..].starts_with(eol) {
                        d += eol.len();
                        break;
                    }
                }
                if !body[d..].starts_with(&delim) {
                    return Err(format!("part {n}: no boundary after its {len} bytes: malformed or truncated"));
                }
                (end, d)
            }
            None => {
                let mut crlf_delim = b"\r\n".to_vec();
                crlf_delim.extend_from_slice(&delim);
                match find(body, &crlf_delim, cursor) {
                    Some(d) => (d, d + 2),
                    None => {
                        let mut lf_delim = b"\n".to_vec();
                        lf_delim.extend_from_slice(&delim);
                        let d = find(body, &lf_delim, cursor).ok_or_else(|| format!("part {n}: no closing boundary: truncated?"))?;
                        (d, d + 1)
                    }
                }
            }
        };
        parts.push(Part { headers, body: body[cursor..body_end].to_vec() });
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "a5f8b3e1c7d94f2a8b6e0c1d3f5a7b9e2c4d6f8a0b1c3e5f7a9b2d4f6e8c0a1b3d5f7e9a2";

    /// A body shaped like Orthanc 1.10's WADO-RS frames answer: CRLF, Content-Location,
    /// Content-Type and Content-Length per part.
    fn orthanc_body(frames: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            b.extend_from_slice(format!("--{B}\r\nContent-Type: image/jpeg\r\nContent-Location: http://127.0.0.1:8042/dicom-web/studies/1/series/2/instances/3/frames/{}\r\nContent-Length: {}\r\n\r\n", i + 1, f.len()).as_bytes());
            b.extend_from_slice(f);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        b
    }

    #[test]
    fn content_types_of_real_servers() {
        let orthanc = format!("multipart/related; type=\"image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50\"; boundary={B}");
        let t = parse_content_type(&orthanc).unwrap();
        assert_eq!((t.boundary.as_str(), t.part_type.as_deref(), t.transfer_syntax.as_deref()), (B, Some("image/jpeg"), Some("1.2.840.10008.1.2.4.50")));
        let other = "Multipart/Related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1; boundary=\"x y\"";
        let t = parse_content_type(other).unwrap();
        assert_eq!(
            (t.boundary.as_str(), t.part_type.as_deref(), t.transfer_syntax.as_deref()),
            ("x y", Some("application/octet-stream"), Some("1.2.840.10008.1.2.1"))
        );
        assert!(parse_content_type("application/json").unwrap_err().contains("multipart/related"));
        assert!(parse_content_type("multipart/related; type=\"image/jpeg\"").unwrap_err().contains("no boundary"));
    }

    #[test]
    fn binary_parts_with_crlf_and_dashes_inside() {
        let f1: Vec<u8> = vec![0xFF, 0xD8, b'\r', b'\n', b'-', b'-', 0, 1, 2, 0xFF, 0xD9];
        let f2: Vec<u8> = format!("\r\n--{B}").into_bytes(); // the boundary itself inside a part
        let parts = parse_body(&orthanc_body(&[&f1, &f2]), B).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, f1);
        assert_eq!(parts[1].body, f2);
        assert!(parts[1].header("content-location").unwrap().ends_with("/frames/2"));
        assert_eq!(parts[0].media_type().as_deref(), Some("image/jpeg"));
        assert_eq!(parts[0].transfer_syntax(), None);
        let labelled = format!("--{B}\r\nContent-Type: Image/JPEG; transfer-syntax=\"1.2.840.10008.1.2.4.50\"\r\n\r\nabc\r\n--{B}--");
        let part = &parse_body(labelled.as_bytes(), B).unwrap()[0];
        assert_eq!((part.media_type().as_deref(), part.transfer_syntax().as_deref()), (Some("image/jpeg"), Some("1.2.840.10008.1.2.4.50")));
    }

    #[test]
    fn parts_without_lengths_end_at_the_delimiter() {
        let body = format!("preamble\r\n--{B}\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n--{B}\r\n\r\nxyz\r\n--{B}--");
        let parts = parse_body(body.as_bytes(), B).unwrap();
        assert_eq!(parts.iter().map(|p| p.body.clone()).collect::<Vec<_>>(), vec![b"abc".to_vec(), b"xyz".to_vec()]);
        let lf = format!("--{B}\nContent-Type: x\n\nabc\n--{B}--\n");
        assert_eq!(parse_body(lf.as_bytes(), B).unwrap()[0].body, b"abc");
    }

    #[test]
    fn truncated_and_malformed_bodies_are_errors() {
        let full = orthanc_body(&[b"0123456789", b"abcdefghij"]);
        // Cut anywhere before the closing delimiter: never a silent short answer.
        for cut in [10, 120, full.len() / 2, full.len() - 30, full.len() - (B.len() + 6)] {
            assert!(parse_body(&full[..cut], B).is_err(), "cut at {cut} parsed");
        }
        assert!(parse_body(b"no boundary here", B).unwrap_err().contains("opening boundary"));
        let bad_len = format!("--{B}\r\nContent-Length: 99\r\n\r\nabc\r\n--{B}--");
        assert!(parse_body(bad_len.as_bytes(), B).unwrap_err().contains("Content-Length 99"));
        let wrong_len = format!("--{B}\r\nContent-Length: 2\r\n\r\nabc\r\n--{B}--");
        assert!(parse_body(wrong_len.as_bytes(), B).unwrap_err().contains("no boundary after"));
        let bad_header = format!("--{B}\r\nnot a header\r\n\r\nabc\r\n--{B}--");
        assert!(parse_body(bad_header.as_bytes(), B).unwrap_err().contains("malformed header"));
    }
}
