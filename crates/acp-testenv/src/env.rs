//! Starting (or joining) the cluster (control plane and node) and handing out
//! clients and namespaces.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

use crate::wait::DEFAULT_TIMEOUT;

/// A running cluster: its kubeconfig, binaries and (usually) its node.
#[derive(Debug)]
pub struct TestEnv {
    kubeconfig: PathBuf,
    bin_dir: PathBuf,
    node: Option<Node>,
}

/// The real node of the environment: where pods run, and what they reach.
#[derive(Clone, Debug)]
pub struct Node {
    /// An address of this machine that pods reach (`ACP_HOST_ADDRESS`): test
    /// servers that pods talk to (a scripted model, a git server) listen here.
    pub host_address: IpAddr,
    /// The `acp` image built from `images/acp/Dockerfile`, on the node.
    pub image: String,
    /// The runner image built from `images/runner/Dockerfile`, on the node.
    pub runner_image: String,
}

static ENV: OnceLock<TestEnv> = OnceLock::new();
static NAMESPACE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The shared environment's state directory.
fn base_dir() -> PathBuf {
    std::env::var_os("ACP_TESTENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".testenv/test"))
}

/// Root of the repository (this crate lives in `crates/acp-testenv`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl TestEnv {
    /// The shared cluster of this test process, started on first use (or
    /// joined, when another test process or `scripts/test` started it).
    ///
    /// The state directory is `$ACP_TESTENV_DIR`, or `<repo>/.testenv/test`.
    pub fn get() -> &'static TestEnv {
        ENV.get_or_init(|| Self::up(&base_dir(), true))
    }

    /// The control plane alone (no node: Jobs get pods that never run), in
    /// `<shared dir>-bench`: for benchmarks that measure the API server's
    /// side of things, where a node would start running their thousands of
    /// pods.
    pub fn control_plane_only() -> &'static TestEnv {
        static BENCH: OnceLock<TestEnv> = OnceLock::new();
        BENCH.get_or_init(|| {
            let mut dir = base_dir().into_os_string();
            dir.push("-bench");
            Self::up(Path::new(&dir), false)
        })
    }

    /// A cluster of its own for tests that install cluster-wide things (the
    /// deploy overlays run controllers over every namespace), in the state
    /// directory `<shared dir>-<name>`; started once per test process.
    pub fn isolated(name: &str) -> &'static TestEnv {
        static ISOLATED: Mutex<BTreeMap<String, &'static TestEnv>> = Mutex::new(BTreeMap::new());
        let mut envs = ISOLATED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        envs.entry(name.to_owned()).or_insert_with(|| {
            let mut dir = base_dir().into_os_string();
            dir.push(format!("-{name}"));
            Box::leak(Box::new(Self::up(Path::new(&dir), true)))
        })
    }

    fn up(dir: &Path, node: bool) -> TestEnv {
        let mut cmd = Command::new(repo_root().join("scripts/testenv"));
        cmd.arg("--dir").arg(dir).args(["up", "--owner-pid", &std::process::id().to_string()]);
        if !node {
            cmd.arg("--no-node");
        }
        let out = cmd.stderr(std::process::Stdio::inherit()).output().expect("failed to run scripts/testenv");
        assert!(out.status.success(), "scripts/testenv up failed (see its output above)");
        let exports = parse_exports(&String::from_utf8_lossy(&out.stdout));
        let bin_dir =
            std::fs::read_to_string(dir.join("bin-dir")).expect("testenv wrote bin-dir").trim().into();
        let node = exports.get("ACP_HOST_ADDRESS").map(|address| Node {
            host_address: address.parse().expect("ACP_HOST_ADDRESS is an IP address"),
            image: exports.get("ACP_IMAGE").cloned().expect("testenv printed ACP_IMAGE"),
            runner_image: exports.get("ACP_RUNNER_IMAGE").cloned().expect("testenv printed ACP_RUNNER_IMAGE"),
        });
        TestEnv { kubeconfig: dir.join("kubeconfig"), bin_dir, node }
    }

    /// The node: panics when the environment was started without one
    /// (`ACP_TESTENV_NODE=0`), since the calling test runs pods.
    pub fn node(&self) -> &Node {
        self.node.as_ref().expect(
            "this test runs pods, but the environment has no node (ACP_TESTENV_NODE=0 or `up --no-node`)",
        )
    }

    /// Where test servers should listen: the node's host address when there
    /// is a node (pods and this process both reach it), else loopback.
    pub fn host_address(&self) -> IpAddr {
        self.node.as_ref().map_or(IpAddr::from([127, 0, 0, 1]), |n| n.host_address)
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client with the admin credential, bound to the calling runtime.
    pub async fn client(&self) -> Client {
        Client::try_from(self.config().await).expect("client from kubeconfig")
    }

    /// The admin client configuration (for impersonating clients).
    pub async fn config(&self) -> Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("readable kubeconfig");
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("valid kubeconfig")
    }

    /// `kubectl` (built with the control plane) pointed at this environment.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Installs acp's CRDs with server-side apply and waits until the API
    /// server serves them. Safe to call from every test.
    pub async fn install_crds(&self, client: &Client) {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let params = PatchParams::apply(acp_api::constants::field_managers::CLI).force();
        for crd in acp_api::crds::all() {
            let name = crd.metadata.name.clone().expect("generated CRDs are named");
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("failed to apply CRD {name}: {e}"));
            tokio::time::timeout(
                DEFAULT_TIMEOUT,
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not established in time"))
            .unwrap_or_else(|e| panic!("failed to watch CRD {name}: {e}"));
        }
    }

    /// A fresh namespace named `<prefix>-<unique suffix>`.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let client = self.client().await;
        let n = NAMESPACE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let mut prefix: String = prefix.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        prefix.truncate(40);
        let name =
            format!("{}-{}-{n}-{:x}", prefix.to_ascii_lowercase(), std::process::id(), nanos % 0xfffff);
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("acp-test".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("failed to create namespace {name}: {e}"));
        // Pods are admitted only once the namespace's default ServiceAccount
        // exists (kube-controller-manager creates it).
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        crate::eventually(&format!("the default ServiceAccount of {name}"), DEFAULT_TIMEOUT, || {
            let accounts = accounts.clone();
            async move { accounts.get_opt("default").await.ok().flatten() }
        })
        .await;
        TestNamespace { name, client }
    }
}

/// `export NAME=value` lines, as `scripts/testenv up` and `env` print them.
fn parse_exports(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A namespace owned by one test, with a client.
#[derive(Clone)]
pub struct TestNamespace {
    /// Namespace name.
    pub name: String,
    /// Admin client.
    pub client: Client,
}

impl TestNamespace {
    /// A typed API for namespaced resources in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}
