//! GitHub Apps in the fake GitHub, as GitHub documents them: an App
//! authenticates with a JSON Web Token signed by its private key (RS256,
//! checked here with the App's public key, `iss` = the App id, at most ten
//! minutes long); `GET /app` names it; `GET /repos/{o}/{r}/installation`
//! finds its installation on a repository (404 when it is not installed
//! there); `POST /app/installations/{id}/access_tokens` mints a token only
//! for the App that owns the installation (401 for a JWT it cannot verify,
//! 404 for another App's installation). An installation token acts as
//! `<slug>[bot]` and only on the installation's repositories.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Identity, Shared, error, lock};

/// A registered App.
#[derive(Clone, Debug)]
pub(super) struct App {
    pub(super) slug: String,
    /// PKCS#1 `RSAPublicKey` DER.
    pub(super) public: Vec<u8>,
}

/// An installation of an App on some repositories.
#[derive(Clone, Debug)]
pub(super) struct Installation {
    pub(super) app: u64,
    pub(super) repositories: Vec<String>,
}

/// The App id whose key signed the request's bearer JWT, if one did.
fn jwt_app(world: &super::World, headers: &HeaderMap) -> Option<u64> {
    let jwt = headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims_part, signature] = parts.as_slice() else { return None };
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_part).ok()?).ok()?;
    let id: u64 = claims["iss"].as_str().and_then(|i| i.parse().ok()).or_else(|| claims["iss"].as_u64())?;
    let app = world.apps.get(&id)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &app.public);
    key.verify(format!("{header}.{claims_part}").as_bytes(), &signature).ok()?;
    let (iat, exp) = (claims["iat"].as_u64()?, claims["exp"].as_u64()?);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    (exp > iat && exp - iat <= 600 && iat <= now + 60 && exp >= now).then_some(id)
}

fn bad_jwt() -> Response {
    error(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded")
}

/// `GET /app`.
pub(super) async fn app(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let world = lock(&world);
    let Some(id) = jwt_app(&world, &headers) else { return bad_jwt() };
    let slug = world.apps.get(&id).map(|a| a.slug.clone()).unwrap_or_default();
    axum::Json(json!({"id": id, "slug": slug, "name": slug})).into_response()
}

/// `GET /repos/{owner}/{repo}/installation`.
pub(super) async fn repository_installation(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let world = lock(&world);
    let Some(app) = jwt_app(&world, &headers) else { return bad_jwt() };
    let repo = format!("{owner}/{repo}");
    let found = world
        .installations
        .iter()
        .find(|(_, i)| i.app == app && i.repositories.iter().any(|r| r.eq_ignore_ascii_case(&repo)));
    match found {
        Some((id, _)) => axum::Json(json!({"id": id, "app_id": app})).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `POST /app/installations/{id}/access_tokens`.
pub(super) async fn access_token(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(installation): Path<u64>,
    body: axum::body::Bytes,
) -> Response {
    let mut world = lock(&world);
    let Some(app) = jwt_app(&world, &headers) else { return bad_jwt() };
    let Some(found) = world.installations.get(&installation).filter(|i| i.app == app).cloned() else {
        // Another App's installation is not this App's to use.
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    // `repositories` (names) narrows the token to some of the installation's.
    let asked: Option<Vec<String>> = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
        b["repositories"]
            .as_array()
            .map(|names| names.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
    });
    let repositories: Vec<String> = match &asked {
        Some(names) => {
            let found: Vec<String> = found
                .repositories
                .iter()
                .filter(|r| {
                    names.iter().any(|n| r.rsplit('/').next().is_some_and(|m| m.eq_ignore_ascii_case(n)))
                })
                .cloned()
                .collect();
            if found.len() != names.len() {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                );
            }
            found
        }
        None => found.repositories.clone(),
    };
    let slug = world.apps.get(&app).map(|a| a.slug.clone()).unwrap_or_default();
    world.next_id += 1;
    let token = format!("ghs_fake{}_{installation}", world.next_id);
    let identity = Identity { login: format!("{slug}[bot]"), repositories: Some(repositories) };
    world.logins.insert(token.clone(), identity);
    world.minted.push((installation, token.clone()));
    let expires = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(1))
        .unwrap_or_default()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_default();
    (StatusCode::CREATED, axum::Json(json!({"token": token, "expires_at": expires.to_string()})))
        .into_response()
}

/// A fresh 2048-bit RSA key made with `openssl` in `dir`: (PKCS#1 PEM
/// private key, as an App's Secret holds it; PKCS#1 public key DER, as the
/// fake GitHub registers it).
pub fn app_key(dir: &std::path::Path) -> (String, Vec<u8>) {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pem = dir.join(format!("app-key-{}-{n}.pem", std::process::id()));
    let public = dir.join(format!("app-key-{}-{n}.der", std::process::id()));
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["genrsa".as_ref(), "-traditional".as_ref(), "-out".as_ref(), pem.as_os_str(), "2048".as_ref()]);
    run(&[
        "rsa".as_ref(),
        "-RSAPublicKey_out".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        pem.as_os_str(),
        "-out".as_ref(),
        public.as_os_str(),
    ]);
    let key = (std::fs::read_to_string(&pem).expect("pem"), std::fs::read(&public).expect("der"));
    let _ = (std::fs::remove_file(pem), std::fs::remove_file(public));
    key
}
