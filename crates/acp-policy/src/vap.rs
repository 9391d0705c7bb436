//! ValidatingAdmissionPolicies and their bindings, evaluated offline with
//! kube-cel exactly where the API server would evaluate them: matching
//! resource rules and object selectors, match conditions, params from the
//! bound ConfigMap, `failurePolicy`, and `Deny` validation actions.
//!
//! Offline there is no namespace object, so `namespaceSelector`s are assumed
//! to match; `spec.variables` and `authorizer` checks are refused at load time
//! rather than evaluated wrongly.

use std::collections::BTreeMap;

use acp_api::constants::GROUP;
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_cel::cel::Value as Cel;
use serde_json::Value;

use crate::cel::{Expr, context, map, to_cel};
use crate::{FieldPath, Finding, Origin};

const RESOURCE: &str = "agenticsessions";

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file is not valid YAML.
    #[error("failed to parse {file}: {message}")]
    Parse {
        /// File name.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A document does not decode as its kind.
    #[error("failed to decode {kind} in {file}: {source}")]
    Decode {
        /// File name.
        file: String,
        /// The document's kind.
        kind: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A CEL expression does not compile.
    #[error("failed to compile policy {policy}: {message}")]
    Compile {
        /// Policy name.
        policy: String,
        /// What does not compile.
        message: String,
    },
    /// The policy uses a feature the offline evaluator does not have.
    #[error(
        "failed to load policy {policy}: {feature} is not supported offline; rewrite the policy without it"
    )]
    Unsupported {
        /// Policy name.
        policy: String,
        /// The feature.
        feature: &'static str,
    },
}

impl PolicyError {
    /// A bounded label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            PolicyError::Parse { .. } => "parse",
            PolicyError::Decode { .. } => "decode",
            PolicyError::Compile { .. } => "compile",
            PolicyError::Unsupported { .. } => "unsupported",
        }
    }
}

/// One `validations[]` entry, compiled.
struct Validation {
    expression: Expr,
    message: Option<String>,
    message_expression: Option<Expr>,
}

struct Policy {
    name: String,
    spec_match: Option<MatchResources>,
    fail_closed: bool,
    has_params: bool,
    /// Names of the match conditions, in the order of `match_conditions`.
    condition_names: Vec<String>,
    match_conditions: Vec<Expr>,
    validations: Vec<Validation>,
}

/// A loaded set of policies, bindings and parameter objects.
pub struct PolicySet {
    policies: Vec<Policy>,
    bindings: Vec<ValidatingAdmissionPolicyBinding>,
    params: BTreeMap<(String, String), Value>,
    /// The Kubernetes CEL library, registered once; each evaluation adds its
    /// variables in an inner scope.
    base: kube_cel::cel::Context<'static>,
}

impl Default for PolicySet {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            bindings: Vec::new(),
            params: BTreeMap::new(),
            base: context(Vec::new()),
        }
    }
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("policies", &self.policy_names())
            .field("bindings", &self.bindings.len())
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn compile(policy: &str, text: &str) -> Result<Expr, PolicyError> {
    Expr::compile(text).map_err(|message| PolicyError::Compile { policy: policy.to_string(), message })
}

impl PolicySet {
    /// Loads every policy, binding and ConfigMap from `(file name, YAML)` pairs;
    /// other kinds (a kustomization, say) are skipped.
    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Result<Self, PolicyError> {
        let mut set = PolicySet::default();
        for (file, text) in files {
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .map_err(|e| PolicyError::Parse { file: file.clone(), message: e.to_string() })?;
            for doc in docs {
                set.add(&file, doc)?;
            }
        }
        Ok(set)
    }

    fn add(&mut self, file: &str, doc: Value) -> Result<(), PolicyError> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let decode = |source| PolicyError::Decode { file: file.to_string(), kind: kind.clone(), source };
        match kind.as_str() {
            "ValidatingAdmissionPolicy" => {
                let policy: ValidatingAdmissionPolicy = serde_json::from_value(doc).map_err(decode)?;
                self.policies.push(Policy::load(policy)?);
            }
            "ValidatingAdmissionPolicyBinding" => {
                self.bindings.push(serde_json::from_value(doc).map_err(decode)?);
            }
            "ConfigMap" => {
                let meta = &doc["metadata"];
                let key = (
                    meta["namespace"].as_str().unwrap_or_default().to_string(),
                    meta["name"].as_str().unwrap_or_default().to_string(),
                );
                self.params.insert(key, doc);
            }
            _ => {}
        }
        Ok(())
    }

    /// Names of the loaded policies.
    pub fn policy_names(&self) -> Vec<&str> {
        self.policies.iter().map(|p| p.name.as_str()).collect()
    }

    /// Whether no policy is loaded.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Every `Deny` finding for `object` (defaulted, as the API server admits
    /// it) on create in `namespace`. `schema` is the object's CRD schema, which
    /// decides which names are escaped in CEL.
    pub fn evaluate(&self, object: &Value, namespace: &str, schema: Option<&Value>) -> Vec<Finding> {
        let mut findings = Vec::new();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let object_cel = to_cel(object, schema);
        let kind = object["kind"].as_str().unwrap_or("AgenticSession");
        let resource = resource_of(kind);
        let request = request(name, namespace, kind, resource);
        let labels = object["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        for binding in &self.bindings {
            let spec = &binding.spec;
            let Some(policy) = self.policies.iter().find(|p| p.name == spec.policy_name) else {
                continue;
            };
            let denies = spec.validation_actions.iter().any(|a| a == "Deny");
            if !denies
                || !matches(policy.spec_match.as_ref(), &labels, resource)
                || !matches(spec.match_resources.as_ref(), &labels, resource)
            {
                continue;
            }
            let mut bindings =
                vec![("object", object_cel.clone()), ("oldObject", Cel::Null), ("request", request.clone())];
            if policy.has_params {
                let param_ref = spec.param_ref.as_ref();
                let name = param_ref.and_then(|r| r.name.clone()).unwrap_or_default();
                let ns = param_ref.and_then(|r| r.namespace.clone()).unwrap_or_else(|| namespace.to_string());
                match self.params.get(&(ns.clone(), name.clone())) {
                    Some(params) => bindings.push(("params", to_cel(params, None))),
                    None => {
                        let deny = param_ref
                            .and_then(|r| r.parameter_not_found_action.as_deref())
                            .is_none_or(|a| a == "Deny");
                        if deny {
                            findings.push(Finding {
                                field: FieldPath::root(),
                                message: format!(
                                    "params {ns}/{name} of binding {} not found (parameterNotFoundAction: Deny)",
                                    binding.metadata.name.as_deref().unwrap_or_default()
                                ),
                                origin: Origin::Policy(policy.name.clone()),
                            });
                        }
                        continue;
                    }
                }
            }
            let mut ctx = self.base.new_inner_scope();
            for (name, value) in bindings {
                ctx.add_variable_from_value(name, value);
            }
            findings.extend(policy.evaluate(&ctx));
        }
        findings
    }
}

/// The resource (plural) of one of acp's kinds.
fn resource_of(kind: &str) -> &'static str {
    match kind {
        "SessionSchedule" => "sessionschedules",
        _ => RESOURCE,
    }
}

/// The `request` variable of a create of `kind` `name` in `namespace`.
fn request(name: &str, namespace: &str, kind: &str, resource: &str) -> Cel {
    let text = |s: &str| Cel::String(std::sync::Arc::new(s.to_string()));
    let gv = |last: &str, value: &str| {
        map([
            ("group".to_string(), text(GROUP)),
            ("version".to_string(), text("v1alpha1")),
            (last.to_string(), text(value)),
        ])
    };
    map([
        ("operation".to_string(), text("CREATE")),
        ("name".to_string(), text(name)),
        ("namespace".to_string(), text(namespace)),
        ("dryRun".to_string(), Cel::Bool(false)),
        ("kind".to_string(), gv("kind", kind)),
        ("resource".to_string(), gv("resource", resource)),
        (
            "userInfo".to_string(),
            map([("username".to_string(), text("")), ("groups".to_string(), Cel::List(Default::default()))]),
        ),
    ])
}

impl Policy {
    fn load(policy: ValidatingAdmissionPolicy) -> Result<Self, PolicyError> {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let spec = policy.spec.unwrap_or_default();
        if spec.variables.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(PolicyError::Unsupported { policy: name, feature: "spec.variables" });
        }
        let conditions = spec.match_conditions.unwrap_or_default();
        let condition_names = conditions.iter().map(|c| c.name.clone()).collect();
        let match_conditions =
            conditions.iter().map(|c| compile(&name, &c.expression)).collect::<Result<Vec<_>, _>>()?;
        let mut validations = Vec::new();
        for validation in spec.validations.unwrap_or_default() {
            if validation.expression.contains("authorizer") {
                return Err(PolicyError::Unsupported { policy: name, feature: "authorizer" });
            }
            validations.push(Validation {
                expression: compile(&name, &validation.expression)?,
                message: validation.message,
                message_expression: validation
                    .message_expression
                    .as_deref()
                    .map(|m| compile(&name, m))
                    .transpose()?,
            });
        }
        Ok(Policy {
            fail_closed: spec.failure_policy.as_deref() != Some("Ignore"),
            has_params: spec.param_kind.is_some(),
            spec_match: spec.match_constraints,
            name,
            condition_names,
            match_conditions,
            validations,
        })
    }

    fn evaluate(&self, ctx: &kube_cel::cel::Context<'_>) -> Vec<Finding> {
        let finding = |message: String| Finding {
            field: field_of(&message),
            message,
            origin: Origin::Policy(self.name.clone()),
        };
        for (condition, name) in self.match_conditions.iter().zip(&self.condition_names) {
            match condition.check(ctx) {
                Ok(true) => {}
                Ok(false) => return Vec::new(),
                Err(error) if self.fail_closed => {
                    return vec![finding(format!("matchCondition {name} failed: {error}"))];
                }
                Err(_) => return Vec::new(),
            }
        }
        let mut findings = Vec::new();
        for validation in &self.validations {
            match validation.expression.check(ctx) {
                Ok(true) => {}
                Ok(false) => findings.push(finding(
                    validation
                        .message_expression
                        .as_ref()
                        .and_then(|m| m.string(ctx))
                        .filter(|m| !m.trim().is_empty())
                        .or_else(|| validation.message.clone())
                        .unwrap_or_else(|| format!("failed expression: {}", validation.expression.text)),
                )),
                Err(error) if self.fail_closed => findings.push(finding(error)),
                Err(_) => {}
            }
        }
        findings
    }
}

/// The field a policy message names first (`spec.timeout is 5 …` → `spec.timeout`).
fn field_of(message: &str) -> FieldPath {
    let first = message.split_whitespace().next().unwrap_or_default();
    if first.starts_with("spec.") || first.starts_with("metadata.") {
        FieldPath::parse(first)
    } else {
        FieldPath::root()
    }
}

fn matches(
    resources: Option<&MatchResources>,
    labels: &serde_json::Map<String, Value>,
    resource: &str,
) -> bool {
    let Some(resources) = resources else { return true };
    let rule_matches = |rule: &NamedRuleWithOperations| {
        let any = |list: &Option<Vec<String>>, want: &str| {
            list.as_ref().is_some_and(|l| l.iter().any(|v| v == "*" || v == want || v == "*/*"))
        };
        any(&rule.api_groups, GROUP)
            && any(&rule.api_versions, "v1alpha1")
            && any(&rule.resources, resource)
            && any(&rule.operations, "CREATE")
    };
    if let Some(rules) = &resources.resource_rules
        && !rules.iter().any(rule_matches)
    {
        return false;
    }
    if resources.exclude_resource_rules.as_ref().is_some_and(|rules| rules.iter().any(rule_matches)) {
        return false;
    }
    resources.object_selector.as_ref().is_none_or(|selector| selects(selector, labels))
}

fn selects(selector: &LabelSelector, labels: &serde_json::Map<String, Value>) -> bool {
    let get = |key: &str| labels.get(key).and_then(Value::as_str);
    let labels_match = selector
        .match_labels
        .as_ref()
        .is_none_or(|want| want.iter().all(|(k, v)| get(k) == Some(v.as_str())));
    let expressions_match = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            match e.operator.as_str() {
                "In" => get(&e.key).is_some_and(|v| values.iter().any(|w| w == v)),
                "NotIn" => get(&e.key).is_none_or(|v| !values.iter().any(|w| w == v)),
                "Exists" => get(&e.key).is_some(),
                "DoesNotExist" => get(&e.key).is_none(),
                _ => false,
            }
        })
    });
    labels_match && expressions_match
}
