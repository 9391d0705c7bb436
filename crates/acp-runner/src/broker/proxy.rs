//! The model API proxy: the agent's inference requests go upstream with the
//! real key.
//!
//! Only the provider's inference endpoints are forwarded
//! ([`super::endpoints`]); any other method or path is refused with a 403
//! in the Messages API's error shape and never reaches the gateway. Of a
//! forwarded request only the query is kept from its target: the path sent
//! is the endpoint's own, under the base URL's path (an absolute-form
//! request line cannot pick another host either); the key the agent sent (a
//! placeholder) and any `Authorization` are dropped and the sidecar's key is
//! added. Responses, event streams included, flow back as they arrive.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tracing::warn;

use super::ServeError;
use super::endpoints::{ANTHROPIC_MESSAGES, Endpoint};

/// The public Messages API, when `ANTHROPIC_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Where model requests go, and the key they get.
pub(super) struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// Path prefix of the base URL, without a trailing `/`.
    prefix: String,
    /// What is forwarded; everything else is refused.
    endpoints: &'static [Endpoint],
    key: Option<HeaderValue>,
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

impl Upstream {
    /// The model API at `base` (default [`DEFAULT_BASE_URL`]) with `key`.
    pub(super) fn new(base: Option<&str>, key: Option<String>) -> Result<Self, ServeError> {
        let url = base.filter(|b| !b.trim().is_empty()).unwrap_or(DEFAULT_BASE_URL).trim();
        let bad = |reason: &str| ServeError::BadUpstream { url: url.to_owned(), reason: reason.to_owned() };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("no scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(bad("only http and https are supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        let key = key
            .map(|k| {
                HeaderValue::from_str(k.trim())
                    .map_err(|_| bad("ANTHROPIC_API_KEY is not a valid header value"))
            })
            .transpose()?
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            endpoints: ANTHROPIC_MESSAGES,
            key,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// The base URL (for logs).
    pub(super) fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.prefix)
    }

    /// Whether a key is added.
    pub(super) fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Sends `request` upstream and streams the answer back, when it is for
    /// one of the endpoints; refuses it otherwise.
    pub(super) async fn forward(&self, request: axum::extract::Request) -> Response {
        let (mut parts, body) = request.into_parts();
        let endpoint = match super::endpoints::check(self.endpoints, &parts.method, parts.uri.path()) {
            Ok(endpoint) => endpoint,
            Err(refusal) => {
                warn!(method = %parts.method, path = %parts.uri.path(), "model API request refused");
                return api_error(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    &format!("acp credentials sidecar: {refusal}"),
                );
            }
        };
        let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}{query}", self.prefix, endpoint.path))
            .build();
        let uri = match uri {
            Ok(uri) => uri,
            Err(err) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    &format!("acp credentials sidecar: bad request target: {err}"),
                );
            }
        };
        strip(&mut parts.headers);
        for name in [header::HOST, HeaderName::from_static("x-api-key"), header::AUTHORIZATION] {
            parts.headers.remove(name);
        }
        if let Some(key) = &self.key {
            parts.headers.insert(HeaderName::from_static("x-api-key"), key.clone());
        }
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        match self.client.request(http::Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Err(err) => api_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!("acp credentials sidecar: failed to reach the model API at {}: {err}", self.base()),
            ),
        }
    }
}

fn strip(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// An error in the Messages API's own shape (`kind` is its error type), so
/// the CLI reports it as such.
fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}
