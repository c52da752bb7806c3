//! Which URLs a DICOMweb client may request, for servers that fetch URLs their callers name
//! (the embedding server): a list of approved prefixes, deny by default.
//!
//! A URL is allowed when its scheme, host and port equal a prefix's and its path starts with the
//! prefix's path at a segment boundary, both as the URL standard normalises them (case of the
//! host, default ports, `.`/`..` segments and their percent-encoded forms, numeric IPv4 forms
//! such as `2130706433`). Hosts are compared as written, never resolved: `localhost` is not
//! allowed by a `127.0.0.1` prefix, nor any name that resolves to an allowed address. URLs
//! carrying user-info, a query string or a fragment in a prefix are refused outright.

use crate::error::{Result, WsiError};
use reqwest::Url;

/// Approved URL prefixes.
#[derive(Debug, Clone)]
pub struct UrlAllowlist {
    prefixes: Vec<Url>,
}

impl UrlAllowlist {
    /// Parses `prefixes` (`http(s)://host[:port]/path`), each normalised as a URL.
    pub fn new<S: AsRef<str>>(prefixes: &[S]) -> Result<Self> {
        let mut out = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            let p = p.as_ref().trim();
            let bad = |why: &str| {
                WsiError::InvalidArgument(format!(
                    "approved DICOMweb prefix {p:?}: {why}; expected http(s)://host[:port]/path, e.g. https://store.example.org/dicom-web"
                ))
            };
            let url = Url::parse(p).map_err(|e| bad(&e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("only http and https are fetched"));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("no host"));
            }
            if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
                return Err(bad("a prefix has no user-info, ?query or #fragment"));
            }
            out.push(url);
        }
        Ok(UrlAllowlist { prefixes: out })
    }

    /// The prefixes, normalised.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(Url::as_str)
    }

    /// Whether `url` is under one of the prefixes.
    pub fn allows(&self, url: &Url) -> bool {
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        // Percent-encoded slashes, backslashes and dots stay encoded in the normalised path, and a gateway that
        // decodes them would serve another path than the one checked: refused.
        let path = url.path().to_ascii_lowercase();
        if ["%2f", "%5c", "%2e"].iter().any(|e| path.contains(e)) {
            return false;
        }
        self.prefixes.iter().any(|p| {
            p.scheme() == url.scheme()
                && p.host_str() == url.host_str()
                && p.port_or_known_default() == url.port_or_known_default()
                && under(p.path(), url.path())
        })
    }

    /// The origin (`scheme://host:port`) of the text `url` when it is under one of the
    /// prefixes: one of finitely many, whatever URLs callers send (for limits kept per store).
    pub fn allowed_origin(&self, url: &str) -> Option<String> {
        let u = Url::parse(url.trim()).ok().filter(|u| self.allows(u))?;
        Some(u.origin().ascii_serialization())
    }

    /// Whether the text `url` parses and is under one of the prefixes.
    pub fn allows_str(&self, url: &str) -> bool {
        Url::parse(url.trim()).is_ok_and(|u| self.allows(&u))
    }
}

/// Whether `path` equals `prefix` or continues it after a `/`.
fn under(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> UrlAllowlist {
        UrlAllowlist::new(&["https://store.example.org/dicom-web", "http://127.0.0.1:8042/dicom-web/"]).unwrap()
    }

    #[test]
    fn urls_under_a_prefix_pass_and_look_alikes_do_not() {
        let l = list();
        for ok in [
            "https://store.example.org/dicom-web/studies/1/series/2",
            "https://STORE.example.org:443/dicom-web/studies/1",
            "https://store.example.org/dicom-web",
            "http://127.0.0.1:8042/dicom-web/studies/1/series/2/instances/3/frames/1,2",
            // The numeric and hexadecimal forms of 127.0.0.1 normalise to it.
            "http://2130706433:8042/dicom-web/studies/1",
            "http://0x7f.1:8042/dicom-web/studies/1",
        ] {
            assert!(l.allows_str(ok), "{ok} should pass");
        }
        for refused in [
            "https://store.example.org/dicom-webX/studies/1",
            "https://store.example.org/other/studies/1",
            "https://store.example.org/dicom-web/../admin",
            "https://store.example.org/dicom-web/%2e%2e/admin",
            "https://store.example.org/dicom-web/..%2F..%2Fadmin/studies/1",
            "https://store.example.org/dicom-web/%5C..%5Cadmin",
            "https://store.example.org/dicom-web/.%2E/admin",
            "https://store.example.org./dicom-web/studies/1",
            "http://store.example.org/dicom-web/studies/1",
            "https://store.example.org:8443/dicom-web/studies/1",
            "https://store.example.org.evil.net/dicom-web/studies/1",
            "https://store.example.org@evil.net/dicom-web/studies/1",
            "https://user:pw@store.example.org/dicom-web/studies/1",
            "http://localhost:8042/dicom-web/studies/1",
            "http://127.0.0.2:8042/dicom-web/studies/1",
            "http://[::1]:8042/dicom-web/studies/1",
            "http://127.0.0.1:8043/dicom-web/studies/1",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(!l.allows_str(refused), "{refused} should be refused");
        }
    }

    #[test]
    fn an_empty_list_allows_nothing_and_bad_prefixes_are_named() {
        assert!(!UrlAllowlist::new::<&str>(&[]).unwrap().allows_str("https://store.example.org/dicom-web"));
        for bad in ["file:///data", "ftp://x/y", "https://u:p@x/dicom-web", "https://x/dicom-web?q=1", "nope"] {
            let e = UrlAllowlist::new(&[bad]).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("expected http(s)://"), "{e}");
        }
    }
}
