//! Credentials out of diagnostics: the user and password of an endpoint URL, and the values of
//! the exporter's headers (API keys), are replaced by the filter mask wherever a URL or an error
//! is shown.

use crate::filter::DEFAULT_FILTER_MASK;

/// `url` with any `user:password@` replaced by the mask.
///
/// ```text
/// https://key:secret@api.example/v1/traces -> https://[FILTERED]@api.example/v1/traces
/// ```
pub(crate) fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{DEFAULT_FILTER_MASK}{}",
            &url[..authority_start],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// `text` with the credentials of every URL in it masked: for an error from a lower layer that
/// quotes the endpoint.
pub(crate) fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The URL starts at its scheme: the letters right before "://".
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        out.push_str(&rest[..scheme_start]);
        let url_end = rest[at..]
            .find(|c: char| c.is_whitespace() || "\"'<>,)".contains(c))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&url(&rest[scheme_start..url_end]));
        rest = &rest[url_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(feature = "otlp")]
/// `text` with every occurrence of each secret replaced by the mask: for an error from a lower
/// layer that may quote a header value or the URL's credentials.
pub(crate) fn secrets<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        // Short values (a one-letter user name) would mask unrelated text.
        if secret.len() >= 3 && out.contains(secret) {
            out = out.replace(secret, DEFAULT_FILTER_MASK);
        }
    }
    out
}

#[cfg(feature = "otlp")]
/// The user and password in `url`'s authority, percent-encoded as written.
pub(crate) fn url_credentials(url: &str) -> Vec<&str> {
    let Some(scheme_end) = url.find("://") else {
        return Vec::new();
    };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => authority[..at]
            .split(':')
            .filter(|s| !s.is_empty())
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_loses_its_credentials_and_nothing_else() {
        assert_eq!(
            super::url("https://key:s3cret@api.example:443/v1/traces?x=1"),
            "https://[FILTERED]@api.example:443/v1/traces?x=1"
        );
        assert_eq!(
            super::url("http://user@host/p@th"),
            "http://[FILTERED]@host/p@th"
        );
        assert_eq!(
            super::url("http://localhost:4318/v1/traces"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(super::url("not a url"), "not a url");
    }

    #[test]
    fn every_url_in_a_message_loses_its_credentials() {
        assert_eq!(
            super::text("export to https://k:s@a.example/v1 failed (http://u:p@b) ok"),
            "export to https://[FILTERED]@a.example/v1 failed (http://[FILTERED]@b) ok"
        );
        assert_eq!(super::text("no url here"), "no url here");
    }

    #[test]
    #[cfg(feature = "otlp")]
    fn secrets_are_masked_in_free_text() {
        let creds = super::url_credentials("https://key:s3cret@api.example/v1");
        assert_eq!(creds, ["key", "s3cret"]);
        assert_eq!(
            super::secrets("denied for key:s3cret", creds),
            "denied for [FILTERED]:[FILTERED]"
        );
    }
}
