//! Redirects never carry credentials elsewhere: a git server that answers
//! with a redirect to another server (another host, or another port of the
//! same host) gets a push, a mirror fetch or a write-back that fails, and
//! the other server, which asks for credentials, is never offered any.
//!
//! Both servers are tiny HTTP servers on loopback addresses written here
//! (`127.0.0.1` redirects; the trap listens on `127.0.0.2`, which libgit2
//! counts as another host, or on another port of `127.0.0.1`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acp_git::Credentials;
use acp_git::mirror::fetch;
use acp_git::push::{BranchWriter, push_branch};

/// The password the trap must never see (base64 of `user:s3cret-password`
/// is what a Basic header would carry; the trap records headers whole).
const PASSWORD: &str = "s3cret-password";

/// Reads one request's head; returns its target and its `Authorization`.
fn read_head(stream: &TcpStream) -> Option<(String, Option<String>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_owned();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    Some((target, authorization))
}

/// Serves `answer(target)` to every request on `listener`, one connection
/// at a time, each closed after its answer; calls `seen` with each request
/// first (so a client that got an answer finds its request recorded).
fn serve(
    listener: TcpListener,
    answer: impl Fn(&str) -> String + Send + 'static,
    seen: impl Fn(String, Option<String>) + Send + 'static,
) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            if let Some((target, authorization)) = read_head(&stream) {
                let answer = answer(&target);
                seen(target, authorization);
                let _ = stream.write_all(answer.as_bytes());
            }
        }
    });
}

/// A server asking for Basic credentials and recording every
/// `Authorization` it is offered. Returns its base URL.
fn trap(host: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((host, 0)).expect("bind the trap");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let offered = Arc::new(Mutex::new(Vec::new()));
    let record = offered.clone();
    serve(
        listener,
        |_| {
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"trap\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned()
        },
        move |_, authorization| {
            if let Some(authorization) = authorization {
                record.lock().expect("lock").push(authorization);
            }
        },
    );
    (url, offered)
}

/// The smart-HTTP answer of an empty repository to a fetch's first request.
fn empty_repository() -> String {
    let pkt = |line: &str| format!("{:04x}{line}", line.len() + 4);
    let body = format!(
        "{}0000{}0000",
        pkt("# service=git-upload-pack\n"),
        pkt(&format!("{} capabilities^{{}}\0ofs-delta\n", "0".repeat(40)))
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A server on 127.0.0.1 answering every request with a 302 to the same
/// path and query at `to`, but fetches with an empty repository when
/// `fetches` (so a write-back gets as far as its push). Returns its base URL
/// and the targets it got.
fn redirector(to: &str, fetches: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the redirector");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let record = requests.clone();
    let to = to.to_owned();
    serve(
        listener,
        move |target| {
            if fetches && target.ends_with("/info/refs?service=git-upload-pack") {
                return empty_repository();
            }
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}{target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        },
        move |target, _| record.lock().expect("lock").push(target),
    );
    (url, requests)
}

/// A repository at `dir` with one commit on branch `fix`.
fn repository(dir: &Path) {
    let repo = git2::Repository::init(dir).expect("init");
    let signature = git2::Signature::now("T", "t@example.invalid").expect("signature");
    let blob = repo.blob(b"hello\n").expect("blob");
    let mut tree = repo.treebuilder(None).expect("treebuilder");
    tree.insert("README.md", blob, 0o100_644).expect("insert");
    let tree = repo.find_tree(tree.write().expect("tree")).expect("find tree");
    repo.commit(Some("refs/heads/fix"), &signature, &signature, "first", &tree, &[]).expect("commit");
}

/// Credentials offered to every host (a SessionSource's secret), and a
/// generic token (the runner's `GIT_TOKEN`).
fn credential_sets() -> [Credentials; 2] {
    [
        Credentials { basic: Some(("user".into(), PASSWORD.into())), ..Credentials::default() },
        Credentials { git_token: Some(PASSWORD.into()), ..Credentials::default() },
    ]
}

/// What one operation did: its error, and what the trap was offered meanwhile.
struct Outcome {
    operation: &'static str,
    error: String,
    offered: Vec<String>,
}

/// Every way acp-git talks to a remote with libgit2, against `url`, each
/// failing (nothing there is a git server), with what the trap recording in
/// `offered` got during each.
fn every_operation(url: &str, creds: &Credentials, offered: &Mutex<Vec<String>>) -> Vec<Outcome> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    repository(&work);
    let writer = BranchWriter {
        dir: tmp.path().join("write-back"),
        url: url.to_owned(),
        branch: "results".into(),
        credentials: creds.clone(),
        author_name: "T".into(),
        author_email: "t@example.invalid".into(),
    };
    let mirror = tmp.path().join("mirror");
    let operations: [(&'static str, &dyn Fn() -> Option<String>); 3] = [
        ("push", &|| push_branch(&work, url, "fix", creds, true).err().map(|e| e.to_string())),
        ("fetch", &|| fetch(&mirror, url, None, creds, Duration::from_secs(60)).err().map(|e| e.to_string())),
        ("write-back", &|| {
            writer.write(&[("r.md".into(), b"r\n".to_vec())], "result").err().map(|e| e.to_string())
        }),
    ];
    operations
        .into_iter()
        .map(|(operation, run)| {
            let error = run().unwrap_or_else(|| panic!("{operation} cannot succeed"));
            let offered = std::mem::take(&mut *offered.lock().expect("lock"));
            Outcome { operation, error, offered }
        })
        .collect()
}

#[test]
fn the_trap_gets_credentials_when_asked_directly() {
    // The servers work: a remote that asks gets the credentials.
    let (trap, offered) = trap("127.0.0.2");
    for creds in credential_sets() {
        for outcome in every_operation(&format!("{trap}/app.git"), &creds, &offered) {
            let Outcome { operation, error, offered } = outcome;
            assert!(!offered.is_empty(), "{operation}: nothing offered ({error})");
            assert!(offered.iter().all(|a| a.starts_with("Basic ")), "{operation}: {offered:?}");
        }
    }
}

/// What went wrong with `outcomes`: credentials offered to the trap, an
/// error without `words`, or one showing the password.
fn problems(outcomes: Vec<Outcome>, words: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for Outcome { operation, error, offered } in outcomes {
        if !offered.is_empty() {
            problems.push(format!("{operation}: credentials reached the trap {offered:?} ({error})"));
        }
        if !words.iter().all(|w| error.contains(w)) || error.contains(PASSWORD) {
            problems.push(format!("{operation}: {error}"));
        }
    }
    problems
}

#[test]
fn a_redirect_to_another_host_gets_no_credentials() {
    let (trap, offered) = trap("127.0.0.2");
    let (server, requests) = redirector(&trap, false);
    let words = ["redirected to another URL", "does not follow redirects"];
    for creds in credential_sets() {
        let problems = problems(every_operation(&format!("{server}/app.git"), &creds, &offered), &words);
        assert!(problems.is_empty(), "{creds:?}:\n{}", problems.join("\n"));
    }
    assert!(!requests.lock().expect("lock").is_empty(), "the redirector was asked");
}

#[test]
fn a_redirect_to_another_port_of_the_same_host_gets_no_credentials() {
    // libgit2 follows a redirect to the same host whatever its policy; the
    // credentials are for the URL (or origin) asked for only.
    let (trap, offered) = trap("127.0.0.1");
    let (server, requests) = redirector(&trap, false);
    for creds in credential_sets() {
        let problems = problems(
            every_operation(&format!("{server}/app.git"), &creds, &offered),
            &["refusing credentials"],
        );
        assert!(problems.is_empty(), "{creds:?}:\n{}", problems.join("\n"));
    }
    assert!(!requests.lock().expect("lock").is_empty(), "the redirector was asked");
}

#[test]
fn a_write_back_whose_push_is_redirected_gets_no_credentials() {
    // The fetch finds an empty repository; the push is redirected.
    for (host, words) in [
        ("127.0.0.2", &["redirected to another URL", "does not follow redirects"][..]),
        ("127.0.0.1", &["refusing credentials"][..]),
    ] {
        let (trap, offered) = trap(host);
        let (server, requests) = redirector(&trap, true);
        for creds in credential_sets() {
            let tmp = tempfile::tempdir().expect("tempdir");
            let writer = BranchWriter {
                dir: tmp.path().join("write-back"),
                url: format!("{server}/app.git"),
                branch: "results".into(),
                credentials: creds.clone(),
                author_name: "T".into(),
                author_email: "t@example.invalid".into(),
            };
            let error = writer.write(&[("r.md".into(), b"r\n".to_vec())], "result").expect_err("no push");
            let offered = std::mem::take(&mut *offered.lock().expect("lock"));
            let outcome = Outcome { operation: "write-back push", error: error.to_string(), offered };
            let problems = problems(vec![outcome], words);
            assert!(problems.is_empty(), "{host} {creds:?}:\n{}", problems.join("\n"));
        }
        let requests = requests.lock().expect("lock");
        assert!(requests.iter().any(|r| r.ends_with("service=git-receive-pack")), "{requests:?}");
    }
}
