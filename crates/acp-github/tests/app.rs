//! GitHub App authentication against a request-asserting fake GitHub: the
//! JWT is a valid RS256 token of the App (checked with the public key), the
//! installation is looked up once, and installation tokens are reused until
//! shortly before they expire.

use std::process::Command;

use acp_github::app::{App, Tokens};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// A fresh 2048-bit RSA key: (PKCS#1 PEM, PKCS#1 public key DER).
fn key(dir: &std::path::Path) -> (String, Vec<u8>) {
    let pem = dir.join("key.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&pem)
        .arg("2048")
        .output()
        .expect("openssl");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let public = dir.join("pub.der");
    let ok = Command::new("openssl")
        .args(["rsa", "-RSAPublicKey_out", "-outform", "DER", "-in"])
        .arg(&pem)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    (std::fs::read_to_string(pem).expect("pem"), std::fs::read(public).expect("der"))
}

/// Matches requests whose bearer token is a JWT of App `app_id` signed by `public`.
struct SignedBy {
    public: Vec<u8>,
    app_id: &'static str,
}

impl Match for SignedBy {
    fn matches(&self, request: &Request) -> bool {
        let Some(jwt) =
            request.headers.get("authorization").and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "))
        else {
            return false;
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else { return false };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &self.public,
        );
        if key.verify(format!("{header}.{claims}").as_bytes(), &signature).is_err() {
            return false;
        }
        let claims: serde_json::Value = URL_SAFE_NO_PAD
            .decode(claims)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .unwrap_or_default();
        let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
        claims["iss"] == self.app_id && exp > iat && exp - iat <= 600
    }
}

fn in_seconds(secs: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let at = i64::try_from(now).expect("a 64-bit clock") + secs;
    k8s_openapi::jiff::Timestamp::from_second(at).expect("a time").to_string()
}

#[tokio::test]
async fn installation_tokens_from_a_signed_app_jwt_are_cached_until_they_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pem, public) = key(dir.path());
    let github = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/installation"))
        .and(SignedBy { public: public.clone(), app_id: "123" })
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 4242})))
        .expect(1)
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path("/app/installations/4242/access_tokens"))
        .and(SignedBy { public: public.clone(), app_id: "123" })
        .respond_with(
            ResponseTemplate::new(201).set_body_json(
                serde_json::json!({"token": "ghs_installation", "expires_at": in_seconds(3600)}),
            ),
        )
        .expect(1)
        .mount(&github)
        .await;
    let app = App::new("123", &pem, None).expect("app");
    let tokens = Tokens::default();
    assert_eq!(tokens.token(&github.uri(), &app, "acme/app").await.expect("token"), "ghs_installation");
    assert_eq!(tokens.token(&github.uri(), &app, "acme/app").await.expect("cached"), "ghs_installation");
    github.verify().await;

    // A token about to expire is renewed; a known installation id skips the lookup.
    let soon = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/app/installations/7/access_tokens"))
        .and(SignedBy { public, app_id: "123" })
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"token": "ghs_short", "expires_at": in_seconds(60)})),
        )
        .expect(2)
        .mount(&soon)
        .await;
    let known = App::new("123", &pem, Some(7)).expect("app");
    for _ in 0..2 {
        assert_eq!(tokens.token(&soon.uri(), &known, "acme/app").await.expect("token"), "ghs_short");
    }
    soon.verify().await;
}

#[test]
fn secrets_name_the_app_or_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pem, _) = key(dir.path());
    let data = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), k8s_openapi::ByteString(v.as_bytes().to_vec()))).collect()
    };
    assert!(App::from_secret_data(&data(&[("token", "ghp_x")])).is_none(), "a token Secret is not an App");
    assert!(
        App::from_secret_data(&data(&[("appId", "123"), ("privateKey", &pem)])).is_some_and(|a| a.is_ok())
    );
    let bad = App::from_secret_data(&data(&[
        ("appId", "123"),
        ("privateKey", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"),
    ]));
    assert!(matches!(bad, Some(Err(acp_github::app::AppError::Key(_)))));
    assert!(matches!(App::new("abc", &pem, None), Err(acp_github::app::AppError::AppId(_))));
}

/// Team B's Secret names team A's (public) App id with B's own key: the
/// token cache must never hand it A's installation token, and GitHub (the
/// faithful fake, playing GitHub) refuses B's JWT. A's token acts only on
/// A's installation.
#[tokio::test]
async fn a_token_is_never_handed_to_another_key_of_the_same_app_id() {
    use acp_testenv::github::{FakeGitHub, app_key};
    let dir = tempfile::tempdir().expect("tempdir");
    let ((pem_a, public_a), (pem_b, _)) = (app_key(dir.path()), app_key(dir.path()));
    let github = FakeGitHub::start().await;
    github.register_app(123, "acme-acp", &public_a);
    github.private_repo("acme/private");
    github.install(123, 77, &["acme/private"]);
    let tokens = Tokens::default();
    let a = App::new("123", &pem_a, None).expect("app");
    let token = tokens.token(&github.url(), &a, "acme/private").await.expect("A's token");
    for installation in [None, Some(77)] {
        let b = App::new("123", &pem_b, installation).expect("app");
        let stolen = tokens.token(&github.url(), &b, "acme/private").await;
        assert!(stolen.is_err(), "B got a token with installation {installation:?}");
        assert!(tokens.login(&github.url(), &b).await.is_err(), "B is not the App");
    }
    assert_eq!(github.minted().len(), 1, "only A's token was minted");
    assert_eq!(tokens.token(&github.url(), &a, "acme/private").await.expect("cached"), token);
    assert_eq!(github.minted().len(), 1, "A's own key hits the cache");
    assert_eq!(tokens.login(&github.url(), &a).await.expect("login"), "acme-acp[bot]");
    // The installation token writes only where the App is installed.
    let elsewhere = acp_github::GitHub::new(&github.url(), &token, "acme/other").expect("client");
    assert!(elsewhere.create_comment(1, "hello").await.is_err(), "a write outside the installation");
    assert!(github.all_comments().is_empty());
}
