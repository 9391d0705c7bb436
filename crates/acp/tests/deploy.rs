//! `deploy/kustomize/`: every overlay builds, the base applies to the real
//! cluster, each component works as its own ServiceAccount (impersonated, so
//! only the base's RBAC grants it anything; the run itself is a real pod from
//! the release's runner image, preloaded on the node), and actions outside a
//! component's RBAC are denied. The overlays running as Deployments are in
//! `deploy_node.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use acp_api::AgenticSession;
use acp_testenv::bench::free_port;
use acp_testenv::githttp::bare_repo;
use acp_testenv::model::{ScriptedModel, Step};
use acp_testenv::proc::{Killed, curl};
use acp_testenv::{TestEnv, eventually};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);
/// A run: a pod starts and the runner drives the CLI.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn kustomize(env: &TestEnv, dir: &str) -> Vec<Value> {
    let path = acp_testenv::env::repo_root().join("deploy/kustomize").join(dir);
    let out = env.kubectl().arg("kustomize").arg(&path).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_saphyr::from_multiple::<Value>(&text).expect("kustomize prints YAML")
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} is missing"))
}

#[test]
fn every_overlay_builds_hardened() {
    let env = TestEnv::get();
    for overlay in ["base", "overlays/dev", "overlays/production"] {
        let docs = kustomize(env, overlay);
        let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
        assert_eq!(deployments.len(), 4, "{overlay}: one Deployment per component");
        for d in &deployments {
            let pod = &d["spec"]["template"]["spec"];
            let name = d["metadata"]["name"].as_str().unwrap_or_default();
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{overlay} {name}");
            let container = &pod["containers"][0]["securityContext"];
            assert_eq!(container["readOnlyRootFilesystem"], true, "{overlay} {name}");
            assert_eq!(container["allowPrivilegeEscalation"], false, "{overlay} {name}");
            assert_eq!(container["capabilities"]["drop"][0], "ALL", "{overlay} {name}");
            assert_eq!(
                pod["serviceAccountName"], name,
                "{overlay}: each component has its own ServiceAccount"
            );
            assert_eq!(d["metadata"]["namespace"], "acp-system");
        }
        // The runner gets no RBAC: no binding names anything but the four components.
        for binding in docs.iter().filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
        {
            for subject in binding["subjects"].as_array().into_iter().flatten() {
                let name = subject["name"].as_str().unwrap_or_default();
                assert!(
                    ["acp-git-sync", "acp-operator", "acp-statusbot", "acp-dashboard"].contains(&name),
                    "{overlay}: unexpected subject {name}"
                );
            }
        }
        find(&docs, "CustomResourceDefinition", "agenticsessions.vteam.ambient-code");
        find(&docs, "ValidatingAdmissionPolicy", "acp-session-timeout");
    }
    let prod = kustomize(env, "overlays/production");
    // Each controller runs a standby under leader election.
    for name in ["acp-git-sync", "acp-operator", "acp-statusbot"] {
        let deployment = find(&prod, "Deployment", name);
        assert_eq!(deployment["spec"]["replicas"], 2, "{name}");
        let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains("--leader-elect"), "{name}: {args}");
        find(&prod, "PodDisruptionBudget", name);
    }
    let operator = find(&prod, "Deployment", "acp-operator");
    assert!(
        operator["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"].is_string()
    );
    find(&prod, "PodDisruptionBudget", "acp-operator");
    find(&prod, "PodDisruptionBudget", "acp-dashboard");
    find(&prod, "NetworkPolicy", "acp-default-deny-ingress");
    let egress = kustomize(env, "overlays/production/runner-egress");
    let policy = find(&egress, "NetworkPolicy", "acp-runner-egress");
    assert!(policy["spec"]["policyTypes"].to_string().contains("Egress"));
    let dev = kustomize(env, "overlays/dev");
    assert!(
        find(&dev, "Deployment", "acp-dashboard").to_string().contains("\"none\""),
        "dev dashboard has no auth"
    );
}

#[test]
fn the_sharded_overlay_runs_three_hardened_shards_of_each_controller_with_their_leases() {
    use acp_api::shard::Shard;
    let env = TestEnv::get();
    let docs = kustomize(env, "overlays/sharded");
    let role = find(&docs, "Role", "acp-leader-election");
    let leases: Vec<&str> = role["rules"][1]["resourceNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (component, account) in [("acp-operator", "acp-operator"), ("acp-git-sync", "acp-git-sync")] {
        let mut shards = Vec::new();
        for d in docs.iter().filter(|d| {
            d["kind"] == "Deployment"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n == component || n.starts_with(&format!("{component}-shard-")))
        }) {
            let name = d["metadata"]["name"].as_str().unwrap_or_default();
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(pod["serviceAccountName"], account, "{name} runs as its component");
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
            assert_eq!(pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(d["spec"]["replicas"], 2, "{name} has a standby");
            assert_eq!(d["metadata"]["namespace"], "acp-system", "{name}");
            let args: Vec<&str> = pod["containers"][0]["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert!(args.contains(&"--leader-elect"), "{name}: {args:?}");
            let key = args.iter().find_map(|a| a.strip_prefix("--shard="));
            let shard = Shard::from_flags(key, args.contains(&"--shard-unlabelled"));
            assert_ne!(shard, Shard::All, "{name} is a shard: {args:?}");
            // The Role lets the shard renew the very lease the binary leads.
            let lease = shard.lease(component);
            assert!(leases.contains(&lease.as_str()), "{lease} is missing from the Role: {leases:?}");
            find(&docs, "PodDisruptionBudget", name);
            shards.push(shard);
        }
        let metrics = find(&docs, "NetworkPolicy", "acp-metrics").to_string();
        if component == "acp-operator" {
            for name in ["acp-operator-shard-1", "acp-operator-shard-2"] {
                assert!(metrics.contains(name), "{name}'s metrics are reachable: {metrics}");
            }
        }
        shards.sort_by_key(|s| format!("{s:?}"));
        shards.dedup();
        assert_eq!(shards.len(), 3, "{component}: three distinct shards");
    }
}

/// A kubeconfig acting as `system:serviceaccount:acp-system:<name>`.
fn impersonating_kubeconfig(env: &TestEnv, dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(env.kubeconfig()).expect("kubeconfig");
    let mut config: Value = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    for user in config["users"].as_array_mut().expect("users") {
        user["user"]["as"] = json!(format!("system:serviceaccount:acp-system:{name}"));
        user["user"]["as-groups"] =
            json!(["system:serviceaccounts", "system:serviceaccounts:acp-system", "system:authenticated"]);
    }
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_json::to_string(&config).expect("JSON")).expect("write kubeconfig");
    path
}

async fn client_as(env: &TestEnv, name: &str) -> kube::Client {
    let mut config = env.config().await;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:acp-system:{name}"));
    config.auth_info.impersonate_groups =
        Some(vec!["system:serviceaccounts".into(), "system:serviceaccounts:acp-system".into()]);
    kube::Client::try_from(config).expect("impersonating client")
}

fn start(kubeconfig: &Path, args: &[&str], log: &Path) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_acp"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("acp starts"),
    )
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn base_applies_and_each_component_works_with_only_its_rbac() {
    let env = TestEnv::get();
    let admin = env.client().await;
    env.install_crds(&admin).await;
    let dir = tempfile::tempdir().expect("tempdir");

    // Apply the base for real, except what would act on every other test
    // sharing this cluster: the policy bindings (cluster-wide policies) and
    // the Deployments (controllers over every namespace, which the node would
    // run). Those are checked by the API server with a server-side dry run;
    // deploy_node.rs runs them for real on clusters of their own.
    let docs = kustomize(env, "base");
    let (bindings, rest): (Vec<Value>, Vec<Value>) = docs
        .into_iter()
        .partition(|d| d["kind"] == "ValidatingAdmissionPolicyBinding" || d["kind"] == "Deployment");
    for (objects, dry_run) in [(rest, false), (bindings, true)] {
        let file = dir.path().join(if dry_run { "dry-run.json" } else { "base.json" });
        std::fs::write(
            &file,
            serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": objects}))
                .expect("JSON"),
        )
        .expect("write");
        let mut apply = env.kubectl();
        apply
            .args(["apply", "--server-side", "--force-conflicts", "--field-manager", "acp-deploy-test", "-f"])
            .arg(&file);
        if dry_run {
            apply.arg("--dry-run=server");
        }
        let out = apply.output().expect("kubectl apply");
        assert!(out.status.success(), "applying the base failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    // A source repository with one session.
    let ns = env.namespace("deploy-rbac").await.name;
    let bare = bare_repo(
        dir.path(),
        "sessions.git",
        "main",
        &[(
            "s.yaml",
            "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: rbac\nspec:\n  initialPrompt: hi\n  llmSettings: {model: claude-sonnet-4-6}\n",
        )],
    );
    let model =
        ScriptedModel::start_on(env.host_address(), "claude-sonnet-4-6", vec![Step::text("done")]).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), &ns);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ambient-runner-secrets"},
        "stringData": {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": model.url()}});
    secrets
        .patch("ambient-runner-secrets", &PatchParams::apply("test"), &Patch::Apply(&secret))
        .await
        .expect("secret");

    let logs = |n: &str| dir.path().join(format!("{n}.log"));
    let kc = |n: &str| impersonating_kubeconfig(env, dir.path(), n);
    let (hook_port, op_port, dash_port) = (free_port(), free_port(), free_port());
    let _gitsync = start(
        &kc("acp-git-sync"),
        &[
            "git-sync",
            "--namespace",
            &ns,
            "--webhook-addr",
            &format!("127.0.0.1:{hook_port}"),
            "--metrics-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--cache-dir",
            &dir.path().join("gs").to_string_lossy(),
        ],
        &logs("git-sync"),
    );
    let _operator = start(
        &kc("acp-operator"),
        &[
            "operator",
            "--namespace",
            &ns,
            "--metrics-addr",
            &format!("127.0.0.1:{op_port}"),
            "--workspace",
            "emptydir",
        ],
        &logs("operator"),
    );
    let _statusbot = start(
        &kc("acp-statusbot"),
        &["statusbot", "--namespace", &ns, "--cache-dir", &dir.path().join("bot").to_string_lossy()],
        &logs("statusbot"),
    );
    let _dashboard = start(
        &kc("acp-dashboard"),
        &[
            "dashboard",
            "--namespace",
            &ns,
            "--auth",
            "token",
            "--listen",
            &format!("127.0.0.1:{dash_port}"),
            "--metrics-addr",
            &format!("127.0.0.1:{}", free_port()),
        ],
        &logs("dashboard"),
    );
    let read_log = |n: &str| std::fs::read_to_string(logs(n)).unwrap_or_default();

    // git-sync, as acp-git-sync, applies the session.
    let source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": "repo"},
        "spec": {"url": format!("file://{}", bare.display()), "interval": "1h"}});
    Api::<acp_api::SessionSource>::namespaced(admin.clone(), &ns)
        .patch("repo", &PatchParams::apply("test"), &Patch::Apply(&source))
        .await
        .expect("source");
    let sessions: Api<AgenticSession> = Api::namespaced(admin.clone(), &ns);
    eventually("git-sync (as its ServiceAccount) to apply the session", TIMEOUT, || async {
        sessions.get_opt("rbac").await.ok().flatten().map(|_| ())
    })
    .await;

    // The operator, as acp-operator, creates the Job; its pod runs the
    // release's runner image and the run completes.
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &ns);
    eventually("the operator (as its ServiceAccount) to create the Job", TIMEOUT, || async {
        let list = jobs.list(&Default::default()).await.ok()?;
        list.items.into_iter().next()
    })
    .await;
    let result = eventually("the session to complete", RUN_TIMEOUT, || async {
        let s = sessions.get("rbac").await.ok()?;
        let status = s.status?;
        (status.phase? == acp_api::SessionPhase::Completed).then_some(status.result?)
    })
    .await;
    assert_eq!(result.summary.as_deref(), Some("done"), "{}", read_log("operator"));

    // The status bot, as acp-statusbot, writes the result back.
    eventually("the status bot (as its ServiceAccount) to write back", TIMEOUT, || async {
        let out = Command::new("git")
            .current_dir(&bare)
            .args(["show", &format!("acp/status:status/{ns}/rbac.yaml")])
            .output()
            .ok()?;
        out.status.success().then_some(())
    })
    .await;

    // The dashboard, as acp-dashboard, reviews a caller's token and serves.
    let token = {
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), &ns);
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "viewer"}})).expect("sa"),
            )
            .await
            .expect("sa");
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "viewer", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns}]});
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &ns)
            .patch("viewer", &PatchParams::apply("test"), &Patch::Apply(&role))
            .await
            .expect("binding");
        let request: k8s_openapi::api::authentication::v1::TokenRequest =
            serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).expect("request");
        accounts
            .create_token_request("viewer", &PostParams::default(), &request)
            .await
            .expect("token")
            .status
            .and_then(|s| s.token)
            .expect("token")
    };
    let list = format!("http://127.0.0.1:{dash_port}/api/v1/sessions");
    let body = eventually("the dashboard (as its ServiceAccount) to answer", TIMEOUT, || async {
        let body = curl(&list, &[&format!("Authorization: Bearer {token}")])?;
        body.contains("\"rbac\"").then_some(body)
    })
    .await;
    assert!(body.contains("\"Completed\""), "{body}\n{}", read_log("dashboard"));

    // Outside their RBAC, the components are refused.
    let as_gitsync = client_as(env, "acp-git-sync").await;
    forbidden(
        Api::<Job>::namespaced(as_gitsync, &ns).list(&Default::default()).await,
        "git-sync listing Jobs",
    );
    let as_dashboard = client_as(env, "acp-dashboard").await;
    forbidden(
        Api::<AgenticSession>::namespaced(as_dashboard.clone(), &ns)
            .patch(
                "rbac",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await,
        "the dashboard patching a session",
    );
    forbidden(
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(as_dashboard, &ns)
            .get("ambient-runner-secrets")
            .await,
        "the dashboard reading a Secret",
    );
    let as_statusbot = client_as(env, "acp-statusbot").await;
    forbidden(
        Api::<AgenticSession>::namespaced(as_statusbot, &ns).delete("rbac", &Default::default()).await,
        "the status bot deleting a session",
    );
    // git-sync impersonates ServiceAccounts only, and only in namespaces that
    // opted in (a RoleBinding to acp-git-sync-impersonator): never a group
    // such as system:masters, never a user. The real authorizer decides.
    let may_impersonate = |attributes: Value| {
        let admin = admin.clone();
        async move {
            let review: k8s_openapi::api::authorization::v1::SubjectAccessReview =
                serde_json::from_value(json!({"spec": {
                    "user": "system:serviceaccount:acp-system:acp-git-sync",
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:acp-system", "system:authenticated"],
                    "resourceAttributes": attributes
                }}))
                .expect("review");
            Api::<k8s_openapi::api::authorization::v1::SubjectAccessReview>::all(admin)
                .create(&PostParams::default(), &review)
                .await
                .expect("review")
                .status
                .is_some_and(|s| s.allowed)
        }
    };
    let impersonate = |resource: &str, namespace: &str, name: &str| json!({"verb": "impersonate", "resource": resource, "namespace": namespace, "name": name});
    assert!(
        !may_impersonate(impersonate("groups", "", "system:masters")).await,
        "git-sync as system:masters"
    );
    assert!(!may_impersonate(impersonate("users", "", "acp-admin")).await, "git-sync as a user");
    assert!(
        !may_impersonate(impersonate("serviceaccounts", &ns, "syncer")).await,
        "before the namespace opts in"
    );
    let opt_in = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "acp-git-sync-impersonator", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "acp-git-sync-impersonator"},
        "subjects": [{"kind": "ServiceAccount", "name": "acp-git-sync", "namespace": "acp-system"}]});
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &ns)
        .patch("acp-git-sync-impersonator", &PatchParams::apply("test"), &Patch::Apply(&opt_in))
        .await
        .expect("opt in");
    let allowed = eventually("the opt-in to take effect", TIMEOUT, || async {
        may_impersonate(impersonate("serviceaccounts", &ns, "syncer")).await.then_some(())
    });
    allowed.await;
    assert!(
        !may_impersonate(impersonate("serviceaccounts", "kube-system", "syncer")).await,
        "another namespace"
    );
    // The extra by which admission knows git-sync's applies (only its own value).
    let extra = |value: &str| {
        json!({"verb": "impersonate", "group": "authentication.k8s.io", "resource": "userextras",
        "subresource": acp_api::constants::impersonation::APPLIED_BY, "name": value})
    };
    assert!(may_impersonate(extra(acp_api::constants::impersonation::GIT_SYNC)).await, "git-sync's extra");
    assert!(!may_impersonate(extra("someone-else")).await, "another value of the extra");

    let as_operator = client_as(env, "acp-operator").await;
    forbidden(
        Api::<acp_api::SessionSource>::namespaced(as_operator.clone(), &ns)
            .delete("repo", &Default::default())
            .await,
        "the operator deleting a source",
    );
    forbidden(
        Api::<k8s_openapi::api::core::v1::Namespace>::all(as_operator).delete(&ns, &Default::default()).await,
        "the operator deleting a namespace",
    );
}

#[test]
fn images_are_multi_stage_non_root_and_pin_the_cli() {
    let root = acp_testenv::env::repo_root();
    let pinned = std::fs::read_to_string(root.join("hack/claude-code-version")).expect("pin");
    for image in ["images/acp/Dockerfile", "images/runner/Dockerfile"] {
        let text = std::fs::read_to_string(root.join(image)).expect("Dockerfile");
        assert!(text.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "{image} is multi-stage");
        let last_stage = text.rsplit("\nFROM ").next().unwrap_or_default();
        let user = last_stage.lines().find_map(|l| l.strip_prefix("USER ")).unwrap_or("root");
        assert!(!user.starts_with('0') && !user.starts_with("root"), "{image} runs as {user}");
        assert!(text.contains("--locked"), "{image} builds from Cargo.lock");
    }
    let runner = std::fs::read_to_string(root.join("images/runner/Dockerfile")).expect("Dockerfile");
    assert!(
        runner.contains(&format!("ARG CLAUDE_CODE_VERSION={}", pinned.trim())),
        "images/runner/Dockerfile pins the Claude Code CLI of hack/claude-code-version ({})",
        pinned.trim()
    );
}
