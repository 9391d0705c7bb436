//! Playing the kubelet's log endpoint. The API server answers `pods/log` by
//! proxying to `https://<node address>:<kubelet port>/containerLogs/<ns>/<pod>/<container>`
//! of the pod's node; this serves that endpoint over TLS on loopback from
//! lines the test writes, and registers a Node pointing at it, so reading a
//! pod's log goes through the real API server as on a cluster.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;

#[derive(Default)]
struct PodLog {
    lines: Vec<String>,
    done: bool,
}

type Logs = Arc<Mutex<HashMap<String, (PodLog, watch::Sender<usize>)>>>;

/// A directory removed on drop.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A kubelet log endpoint. Stops when dropped.
pub struct LogServer {
    port: u16,
    logs: Logs,
    task: tokio::task::JoinHandle<()>,
    _certs: Dir,
}

fn key(ns: &str, pod: &str) -> String {
    format!("{ns}/{pod}")
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LogQuery {
    follow: Option<bool>,
    tail_lines: Option<usize>,
}

async fn container_logs(
    State(logs): State<Logs>,
    Path((ns, pod, _container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Body {
    let id = key(&ns, &pod);
    let (lines, sent, changes) = {
        let mut all = logs.lock().unwrap_or_else(|e| e.into_inner());
        let (log, tx) = all.entry(id.clone()).or_insert_with(|| (PodLog::default(), watch::channel(0).0));
        let skip = query.tail_lines.map_or(0, |t| log.lines.len().saturating_sub(t));
        (log.lines[skip..].to_vec(), log.lines.len(), tx.subscribe())
    };
    let head = futures_util::stream::iter(
        lines.into_iter().map(|l| Ok::<_, Infallible>(Bytes::from(format!("{l}\n")))),
    );
    if !query.follow.unwrap_or(false) {
        return Body::from_stream(head);
    }
    // Following: new lines as they are written, until the log is finished.
    let more =
        futures_util::stream::unfold((logs, id, sent, changes), |(logs, id, sent, mut changes)| async move {
            loop {
                let (fresh, done) = {
                    let all = logs.lock().unwrap_or_else(|e| e.into_inner());
                    let (log, _) = all.get(&id)?;
                    (log.lines[sent.min(log.lines.len())..].to_vec(), log.done)
                };
                if !fresh.is_empty() {
                    let text: String = fresh.iter().map(|l| format!("{l}\n")).collect();
                    let next = sent + fresh.len();
                    return Some((Ok::<_, Infallible>(Bytes::from(text)), (logs, id, next, changes)));
                }
                if done || changes.changed().await.is_err() {
                    return None;
                }
            }
        });
    Body::from_stream(futures_util::StreamExt::chain(head, more))
}

fn router(logs: Logs) -> Router {
    Router::new().route("/containerLogs/{ns}/{pod}/{container}", get(container_logs)).with_state(logs)
}

fn unique() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

impl LogServer {
    /// Serves on a free loopback port with a fresh self-signed certificate
    /// (made with the `openssl` CLI; the API server does not verify kubelet
    /// certificates unless told to).
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("acp-kubelet-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let (cert, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=acp-fake-kubelet",
            ])
            .arg("-keyout")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        use rustls::pki_types::pem::PemObject as _;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .expect("cert")
            .collect::<Result<_, _>>()
            .expect("cert parses");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key_path).expect("key parses");
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let logs: Logs = Arc::default();
        let app = router(logs.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { port, logs, task, _certs: Dir(dir) }
    }

    /// The port (the Node's kubelet endpoint).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Appends `line` to the log of `ns/pod`.
    pub fn write(&self, ns: &str, pod: &str, line: &str) {
        let mut all = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let (log, tx) = all.entry(key(ns, pod)).or_insert_with(|| (PodLog::default(), watch::channel(0).0));
        log.lines.push(line.to_owned());
        tx.send_replace(log.lines.len());
    }

    /// Ends the log of `ns/pod`: followers see the end of the stream.
    pub fn finish(&self, ns: &str, pod: &str) {
        let mut all = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let (log, tx) = all.entry(key(ns, pod)).or_insert_with(|| (PodLog::default(), watch::channel(0).0));
        log.done = true;
        tx.send_modify(|_| {});
    }

    /// Registers Node `name` whose kubelet is this server.
    pub async fn register_node(&self, client: &kube::Client, name: &str) {
        let nodes: Api<Node> = Api::all(client.clone());
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        nodes
            .patch(name, &PatchParams::apply("acp-testenv").force(), &Patch::Apply(&node))
            .await
            .expect("node");
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}}}});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.expect("node status");
    }
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
