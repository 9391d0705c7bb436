//! Which requests the model proxy forwards: the provider's inference
//! endpoints, and nothing else.
//!
//! Whatever the proxy forwards carries the real key, so a gateway's other
//! routes (`/admin/…`, key management, another tenant's API) must never be
//! reached through it. A request is forwarded only when its method and its
//! path, once normalised, are exactly an [`Endpoint`] of the provider's
//! table; the path sent upstream is then the table's own, so no spelling of
//! the client's (percent-encoding, say) reaches the gateway. Normalising
//! refuses rather than repairs: a path with a `.` or `..` segment, an empty
//! segment (`//`, a trailing `/`), a backslash, an encoded `/` or `\`, a
//! control character or broken percent-encoding is refused whole. The query
//! string is not part of the check and is kept (Claude Code sends
//! `?beta=true`).
//!
//! The check is pure; [`super::proxy`] applies it before anything goes
//! upstream.

use http::Method;

/// One endpoint the proxy forwards: a method and an exact path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// The one method allowed.
    pub(super) method: Method,
    /// The path, normalised (no percent-encoding, no dot or empty segment).
    pub(super) path: &'static str,
}

/// The Anthropic Messages API, as Claude Code calls it.
///
/// Another provider gets a table of its own: OpenAI's Responses API is
/// `POST /v1/responses`; Gemini's `POST /v1beta/models/{model}:generateContent`
/// (and `:streamGenerateContent`) names the model in the path, which would
/// need a pattern segment in [`Endpoint`].
pub(super) const ANTHROPIC_MESSAGES: &[Endpoint] = &[
    Endpoint { method: Method::POST, path: "/v1/messages" },
    Endpoint { method: Method::POST, path: "/v1/messages/count_tokens" },
];

/// Why a request is not forwarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    /// The path is not a plain path.
    #[error("refusing the request path: {0}")]
    Malformed(&'static str),
    /// Not an endpoint of the table.
    #[error("refusing {method} {path}: the sidecar forwards only {allowed}")]
    NotAllowed {
        /// The request's method.
        method: Method,
        /// The request's path, normalised.
        path: String,
        /// The table, for the message.
        allowed: String,
    },
}

/// The endpoint of `table` that `method` and `path` (without the query)
/// name, or why there is none.
pub(super) fn check<'t>(table: &'t [Endpoint], method: &Method, path: &str) -> Result<&'t Endpoint, Refusal> {
    let path = normalise(path)?;
    table.iter().find(|e| e.method == *method && e.path == path).ok_or_else(|| Refusal::NotAllowed {
        method: method.clone(),
        path,
        allowed: table.iter().map(|e| format!("{} {}", e.method, e.path)).collect::<Vec<_>>().join(", "),
    })
}

/// `path` percent-decoded, when every segment is a plain name.
fn normalise(path: &str) -> Result<String, Refusal> {
    let rest = path.strip_prefix('/').ok_or(Refusal::Malformed("it does not start with '/'"))?;
    let mut normal = String::with_capacity(path.len());
    for raw in rest.split('/') {
        let segment = decode(raw)?;
        match segment.as_str() {
            "" => return Err(Refusal::Malformed("it has an empty segment")),
            "." | ".." => return Err(Refusal::Malformed("it has a dot segment")),
            _ => {}
        }
        normal.push('/');
        normal.push_str(&segment);
    }
    Ok(normal)
}

/// One segment percent-decoded; refused when it would hide a separator
/// (`%2F`, `%5C`, a backslash), holds a control character, or is not UTF-8.
fn decode(segment: &str) -> Result<String, Refusal> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Refusal::Malformed("it has broken percent-encoding"))?;
            i += 3;
            byte
        } else {
            i += 1;
            bytes[i - 1]
        };
        match byte {
            b'/' => return Err(Refusal::Malformed("it has an encoded '/'")),
            b'\\' => return Err(Refusal::Malformed("it has a backslash")),
            b if b.is_ascii_control() => return Err(Refusal::Malformed("it has a control character")),
            b => decoded.push(b),
        }
    }
    String::from_utf8(decoded).map_err(|_| Refusal::Malformed("it is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(method: Method, path: &str) -> Option<&'static str> {
        check(ANTHROPIC_MESSAGES, &method, path).ok().map(|e| e.path)
    }

    #[test]
    fn the_messages_endpoints_are_forwarded() {
        assert_eq!(forwarded(Method::POST, "/v1/messages"), Some("/v1/messages"));
        assert_eq!(forwarded(Method::POST, "/v1/messages/count_tokens"), Some("/v1/messages/count_tokens"));
        // Percent-encoding of plain characters is decoded; the table's path
        // is what goes upstream.
        assert_eq!(forwarded(Method::POST, "/v1/%6Dessages"), Some("/v1/messages"));
        assert_eq!(forwarded(Method::POST, "/v1/messages/count%5ftokens"), Some("/v1/messages/count_tokens"));
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        for path in [
            "/",
            "",
            "v1/messages",
            "/v1",
            "/v1/models",
            "/v1/complete",
            "/v1/messages/batches",
            "/v1/messages/count_tokens/x",
            "/admin/x",
            "/v1/anything",
            "/V1/MESSAGES",
            "/v1/messages;x=1",
            "/v1/messages%3Fx",
            "/v1/messages%00",
            "/v1/messages%20",
            "/v1/%252e%252e/admin",
        ] {
            assert_eq!(forwarded(Method::POST, path), None, "{path}");
        }
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD, Method::OPTIONS]
        {
            assert_eq!(forwarded(method.clone(), "/v1/messages"), None, "{method}");
            assert_eq!(forwarded(method.clone(), "/v1/messages/count_tokens"), None, "{method}");
        }
    }

    #[test]
    fn dot_empty_and_encoded_separator_segments_are_refused_not_resolved() {
        let malformed = |path: &str| match check(ANTHROPIC_MESSAGES, &Method::POST, path) {
            Err(Refusal::Malformed(why)) => why,
            other => panic!("{path}: expected a malformed path, got {other:?}"),
        };
        for path in [
            "/../admin/x",
            "/v1/messages/../../admin",
            "/v1/messages/..",
            "/v1/./messages",
            "/./v1/messages",
            "/v1/messages/.",
            "/v1/count_tokens/../messages",
            "/v1/%2e%2e/admin",
            "/v1/%2E%2E/admin",
            "/v1/messages/%2e%2e/%2e%2e/admin",
            "/v1/messages/.%2e/x",
            "/v1/%2e/messages",
        ] {
            assert_eq!(malformed(path), "it has a dot segment", "{path}");
        }
        for path in ["//v1/messages", "/v1//messages", "/v1/messages/", "/v1/messages//"] {
            assert_eq!(malformed(path), "it has an empty segment", "{path}");
        }
        for path in
            ["/v1%2Fmessages", "/v1%2fmessages", "/v1/messages%2Fcount_tokens", "/%2F%2Fevil/v1/messages"]
        {
            assert_eq!(malformed(path), "it has an encoded '/'", "{path}");
        }
        for path in ["/v1\\messages", "/v1%5Cmessages", "/v1/messages%5c..%5c..%5cadmin"] {
            assert_eq!(malformed(path), "it has a backslash", "{path}");
        }
        for path in ["/v1/messages%", "/v1/messages%2", "/v1/%zzmessages", "/v1/%+1messages"] {
            assert_eq!(malformed(path), "it has broken percent-encoding", "{path}");
        }
        assert_eq!(malformed("/v1/messages%0d%0aX:1"), "it has a control character");
        assert_eq!(malformed("/v1/messages%ff"), "it is not UTF-8");
        assert_eq!(malformed("v1/messages"), "it does not start with '/'");
    }

    #[test]
    fn a_refusal_names_what_is_forwarded() {
        let refusal = check(ANTHROPIC_MESSAGES, &Method::GET, "/v1/models").expect_err("refused");
        assert_eq!(
            refusal.to_string(),
            "refusing GET /v1/models: the sidecar forwards only POST /v1/messages, POST /v1/messages/count_tokens"
        );
    }
}
