//! The shared corpus, offline: every manifest under `corpus/allowed` passes the
//! schema and the shipped policies, and every one under `corpus/denied` fails
//! with the message its `# expect:` line names. `apiserver.rs` feeds the same
//! files to the real API server.

use std::path::PathBuf;

use acp_policy::Checker;
use serde_json::Value;

fn corpus(dir: &str) -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("corpus directory")
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).expect("corpus file"))
        })
        .collect()
}

fn object(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("corpus files are valid YAML")
}

#[test]
fn allowed_manifests_have_no_findings() {
    let checker = Checker::with_embedded_policies().expect("shipped policies load");
    let files = corpus("allowed");
    assert!(files.len() >= 5);
    for (name, text) in files {
        let findings = checker.check(&object(&text), "team-a");
        assert!(findings.is_empty(), "{name}: {findings:?}");
    }
}

#[test]
fn denied_manifests_fail_with_the_expected_message() {
    let checker = Checker::with_embedded_policies().expect("shipped policies load");
    let files = corpus("denied");
    assert!(files.len() >= 15);
    for (name, text) in files {
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name} has no '# expect:' line"));
        let findings = checker.check(&object(&text), "team-a");
        assert!(
            findings.iter().any(|f| f.to_string().contains(expect)),
            "{name}: expected a finding containing {expect:?}, got {findings:?}"
        );
    }
}

#[test]
fn shipped_policies_all_load() {
    let checker = Checker::with_embedded_policies().expect("shipped policies load");
    let mut names = checker.policies().policy_names();
    names.sort();
    assert_eq!(
        names,
        [
            "acp-reserved-metadata",
            "acp-schedule-frequency",
            "acp-session-env-secrets",
            "acp-session-max-turns",
            "acp-session-models",
            "acp-session-repos",
            "acp-session-runner-secret",
            "acp-session-timeout"
        ]
    );
}

#[test]
fn missing_params_deny_and_bad_policies_are_refused() {
    let policy =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/session-timeout.yaml"))
            .expect("policy file");
    let set = acp_policy::PolicySet::from_files([("t.yaml".to_string(), policy.clone())]).expect("loads");
    let checker = Checker::new(set);
    let (_, text) = corpus("allowed").into_iter().next().expect("one allowed file");
    let findings = checker.check(&object(&text), "team-a");
    assert!(
        findings.iter().any(|f| f.message.contains("not found (parameterNotFoundAction: Deny)")),
        "{findings:?}"
    );

    let broken = policy.replace("!has(object.spec.timeout) ||", "!has(object.spec.timeout) || ((");
    let error =
        acp_policy::PolicySet::from_files([("t.yaml".to_string(), broken)]).expect_err("does not compile");
    assert_eq!(error.category(), "compile");
}

/// Offline only (the API server checks a schedule's runs when they are
/// created, at each due time): git-sync and `acp validate` check a
/// schedule's template as the session it creates. Its cron and zone are
/// checked by the CRD's rules, on the server as offline.
#[test]
fn a_schedule_template_is_held_to_the_session_policies_and_its_cron_is_parsed() {
    let checker = Checker::with_embedded_policies().expect("shipped policies load");
    let schedule = |schedule: &str, zone: &str, model: &str| {
        object(&format!(
            "apiVersion: vteam.ambient-code/v1alpha1\nkind: SessionSchedule\nmetadata:\n  name: nightly\nspec:\n  schedule: \"{schedule}\"\n  timeZone: {zone}\n  template:\n    spec:\n      llmSettings:\n        model: {model}\n"
        ))
    };
    assert!(checker.check(&schedule("0 3 * * *", "UTC", "sonnet"), "team-a").is_empty());
    let findings = checker.check(&schedule("0 3 * * *", "UTC", "gpt-4"), "team-a");
    assert!(
        findings.iter().any(|f| f.field.to_string() == "spec.template.spec.llmSettings.model"
            && f.message.contains("gpt-4 is not allowed")),
        "{findings:?}"
    );
    let findings = checker.check(&schedule("0 3 * *", "UTC", "sonnet"), "team-a");
    assert!(
        findings
            .iter()
            .any(|f| f.field.to_string() == "spec.schedule" && f.message.contains("4 fields, not 5")),
        "{findings:?}"
    );
    let findings = checker.check(&schedule("0 3 * * *", "Mars/Base", "sonnet"), "team-a");
    assert!(
        findings
            .iter()
            .any(|f| f.field.to_string() == "spec.timeZone" && f.message.contains("unknown time zone")),
        "{findings:?}"
    );
}
