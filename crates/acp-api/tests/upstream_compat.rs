//! The generated AgenticSession CRD is a superset of the existing platform's:
//! every property it declares exists here with the same type, default and enum.

use serde_json::Value;

const UPSTREAM: &str = include_str!("fixtures/agenticsessions-crd.upstream.yaml");

fn upstream_schema() -> Value {
    let crd: Value = serde_saphyr::from_str(UPSTREAM).expect("fixture parses");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn our_schema() -> Value {
    let crd = acp_api::crds::all().into_iter().next().expect("AgenticSession CRD first");
    let crd = serde_json::to_value(crd).expect("serializable");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Walks the upstream schema and records every mismatch in `ours`.
fn compare(path: &str, upstream: &Value, ours: &Value, problems: &mut Vec<String>) {
    if ours.is_null() {
        problems.push(format!("{path}: missing"));
        return;
    }
    for key in ["type", "default", "enum", "format", "minimum", "x-kubernetes-preserve-unknown-fields"] {
        if let Some(want) = upstream.get(key) {
            match ours.get(key) {
                Some(have) if values_equal(want, have) => {}
                have => problems.push(format!("{path}: {key} is {have:?}, upstream {want}")),
            }
        }
    }
    if let Some(props) = upstream.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            compare(&format!("{path}.{name}"), sub, &ours["properties"][name], problems);
        }
    }
    if let Some(items) = upstream.get("items") {
        compare(&format!("{path}[]"), items, &ours["items"], problems);
    }
    if let Some(additional) = upstream.get("additionalProperties") {
        compare(&format!("{path}{{}}"), additional, &ours["additionalProperties"], problems);
    }
    if let Some(required) = upstream.get("required").and_then(Value::as_array) {
        for field in required {
            let ours_required = ours["required"].as_array().is_some_and(|r| r.contains(field));
            if !ours_required {
                problems.push(format!("{path}: {field} not required"));
            }
        }
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < f64::EPSILON,
        _ => a == b,
    }
}

#[test]
fn every_upstream_property_default_and_enum_is_kept() {
    let mut problems = Vec::new();
    compare("", &upstream_schema(), &our_schema(), &mut problems);
    assert!(problems.is_empty(), "incompatible with the existing platform's CRD:\n{}", problems.join("\n"));
}

#[test]
fn comparison_notices_a_changed_default() {
    let mut ours = our_schema();
    ours["properties"]["spec"]["properties"]["timeout"]["default"] = Value::from(600);
    let mut problems = Vec::new();
    compare("", &upstream_schema(), &ours, &mut problems);
    assert_eq!(problems, vec![".spec.timeout: default is Some(Number(600)), upstream 300".to_owned()]);
}

#[test]
fn names_and_scope_match() {
    let upstream: Value = serde_saphyr::from_str(UPSTREAM).expect("fixture parses");
    let ours = serde_json::to_value(&acp_api::crds::all()[0]).expect("serializable");
    assert_eq!(ours["metadata"]["name"], upstream["metadata"]["name"]);
    assert_eq!(ours["spec"]["group"], upstream["spec"]["group"]);
    assert_eq!(ours["spec"]["scope"], upstream["spec"]["scope"]);
    for key in ["plural", "singular", "kind", "shortNames"] {
        assert_eq!(ours["spec"]["names"][key], upstream["spec"]["names"][key], "names.{key}");
    }
    let version = &ours["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
}
