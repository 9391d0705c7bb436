//! Offline admission for AgenticSession manifests: the same verdict the API
//! server gives, without a cluster.
//!
//! [`Checker`] runs what the API server runs on a create, in its order: strict
//! decoding (unknown fields), null pruning and defaulting from the CRD schema,
//! the structural schema and its CEL rules ([`schema`]), then the
//! ValidatingAdmissionPolicies of `policies/` ([`vap`]). git-sync runs it before
//! applying, and `acp validate` and the GitHub Action before a merge.
//!
//! This crate does no I/O: policies come in as YAML text. [`embedded`] holds the
//! repository's `policies/` compiled into the binary as the default set.
#![forbid(unsafe_code)]

mod cel;
pub mod embedded;
pub mod path;
pub mod schema;
pub mod vap;

use std::fmt;

use serde_json::Value;

pub use path::{FieldPath, Segment};
pub use schema::SessionSchema;
pub use vap::{PolicyError, PolicySet};

/// Where a finding comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum Origin {
    /// The AgenticSession CRD's structural schema or its CEL rules.
    Schema,
    /// A ValidatingAdmissionPolicy, by name.
    Policy(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Schema => f.write_str("schema"),
            Origin::Policy(name) => write!(f, "policy {name}"),
        }
    }
}

/// One reason a manifest would be refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The field at fault, when one is known.
    #[serde(skip_serializing_if = "FieldPath::is_empty")]
    pub field: FieldPath,
    /// What is wrong and what to change.
    pub message: String,
    /// Which check refused it.
    pub origin: Origin,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() || self.message.contains(&self.field.to_string()) {
            write!(f, "{} ({})", self.message, self.origin)
        } else {
            write!(f, "{}: {} ({})", self.field, self.message, self.origin)
        }
    }
}

/// Schema plus policies: everything an AgenticSession or a SessionSchedule
/// must pass.
#[derive(Debug)]
pub struct Checker {
    schema: SessionSchema,
    schedule: SessionSchema,
    policies: PolicySet,
}

impl Checker {
    /// A checker with the AgenticSession schema and `policies`.
    pub fn new(policies: PolicySet) -> Self {
        Self { schema: SessionSchema::new(), schedule: SessionSchema::for_kind("SessionSchedule"), policies }
    }

    /// A checker with the schema and the policies built into this binary.
    pub fn with_embedded_policies() -> Result<Self, PolicyError> {
        Ok(Self::new(embedded::policies()?))
    }

    /// The policies this checker enforces.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Every finding for `object` (an AgenticSession or a SessionSchedule, as
    /// JSON) created in `namespace`. Policies run only on objects the schema
    /// accepts, as in the API server, where admission follows validation.
    ///
    /// A schedule's template is also checked as the session it creates: the
    /// policies on sessions bound what a schedule may run, found in git
    /// rather than at each due time (findings point into `spec.template`).
    pub fn check(&self, object: &Value, namespace: &str) -> Vec<Finding> {
        if object["kind"] != "SessionSchedule" {
            let (defaulted, findings) = self.schema.check(object);
            if !findings.is_empty() {
                return findings;
            }
            return self.policies.evaluate(&defaulted, namespace, Some(self.schema.schema()));
        }
        let (defaulted, mut findings) = self.schedule_schema(object);
        if !findings.is_empty() {
            return findings;
        }
        findings = self.policies.evaluate(&defaulted, namespace, Some(self.schedule.schema()));
        findings.extend(parser_verdict(&defaulted));
        findings.extend(self.template_as_session(object, namespace));
        findings
    }

    /// Every schema finding of a schedule at once: the cron fields and the
    /// zone are CEL rules of the CRD, evaluated with the rest of its schema;
    /// and its name fits a label value (its runs carry it).
    fn schedule_schema(&self, object: &Value) -> (Value, Vec<Finding>) {
        let (defaulted, mut findings) = self.schedule.check(object);
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if name.len() > 63 {
            findings.push(Finding {
                field: FieldPath::parse("metadata.name"),
                message: format!(
                    "a SessionSchedule name is at most 63 characters (its runs carry it as a label value); this one has {}",
                    name.len()
                ),
                origin: Origin::Schema,
            });
        }
        (defaulted, findings)
    }

    /// A schedule's template checked as the session it creates (with the
    /// longest name a run gets), findings pointing into `spec.template`.
    fn template_as_session(&self, object: &Value, namespace: &str) -> Vec<Finding> {
        let template = &object["spec"]["template"];
        // The longest name a run gets: `<schedule>-manual-<8 hex>`.
        let mut metadata = serde_json::json!({
            "name": format!("{}-manual-00000000", object["metadata"]["name"].as_str().unwrap_or_default()),
        });
        for key in ["labels", "annotations"] {
            if let Some(map) = template["metadata"].get(key) {
                metadata[key] = map.clone();
            }
        }
        let session = serde_json::json!({
            "apiVersion": acp_api::constants::API_VERSION,
            "kind": "AgenticSession",
            "metadata": metadata,
            "spec": template["spec"],
        });
        let (session_defaulted, session_findings) = self.schema.check(&session);
        let at_template = FieldPath::root().key("spec").key("template");
        let moved = |f: Finding| {
            let field = if f.field.0.first() == Some(&path::Segment::Key("metadata".into()))
                && f.field.0.get(1) == Some(&path::Segment::Key("name".into()))
            {
                FieldPath::root().key("metadata").key("name")
            } else {
                at_template.join(&f.field)
            };
            Finding { field, ..f }
        };
        if !session_findings.is_empty() {
            return session_findings.into_iter().map(moved).collect();
        }
        self.policies
            .evaluate(&session_defaulted, namespace, Some(self.schema.schema()))
            .into_iter()
            .map(moved)
            .collect()
    }
}

/// The operator's parser on a schedule the CRD's rules admitted: they admit
/// exactly what it does; this guards against the two drifting apart.
fn parser_verdict(defaulted: &Value) -> Option<Finding> {
    let error = acp_api::schedule::cron::Cron::parse(
        defaulted["spec"]["schedule"].as_str().unwrap_or_default(),
        defaulted["spec"]["timeZone"].as_str(),
    )
    .err()?;
    let field = match error {
        acp_api::schedule::cron::CronError::TimeZone { .. } => "spec.timeZone",
        acp_api::schedule::cron::CronError::Schedule { .. } => "spec.schedule",
    };
    Some(Finding { field: FieldPath::parse(field), message: error.to_string(), origin: Origin::Schema })
}
