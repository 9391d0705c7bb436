//! CustomResourceDefinitions generated from the Rust types, and their YAML form.
//!
//! `acp crds` prints [`all_yaml`]; `crds/<plural>.<group>.yaml` holds the same
//! text, one file per CRD.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{AgenticSession, SessionSource, schema::strip_nullable};

/// Every CRD acp defines, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![finish(AgenticSession::crd()), finish(SessionSource::crd())]
}

/// The file name a CRD is stored under in `crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as a YAML document (no leading `---`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(crd)
}

/// Every CRD as one multi-document YAML stream.
pub fn all_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}

fn finish(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = match serde_json::to_value(&crd) {
        Ok(value) => value,
        // Serializing a typed CRD to a JSON value cannot fail: every map key is a string.
        Err(_) => return crd,
    };
    strip_nullable(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}
