//! CEL evaluation for admission policies on kube-cel's function library, with
//! the API server's value model: declared schema properties are escaped by the
//! Kubernetes rules, map keys (`environmentVariables`, labels) are not, and
//! JSON integers are CEL `int`.

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Program, Value as Cel};
use serde_json::Value;

/// CEL keywords the API server escapes as `__keyword__` in property names.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A compiled expression and its source text.
pub(crate) struct Expr {
    pub(crate) text: String,
    program: Program,
}

impl Expr {
    /// Compiles `text`.
    pub(crate) fn compile(text: &str) -> Result<Self, String> {
        let program = Program::compile(text).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(Self { text: text.to_string(), program })
    }

    /// Evaluates to a boolean, or the reason it could not.
    pub(crate) fn check(&self, ctx: &Context<'_>) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(Cel::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("expression {:?} returned {other:?}, not a boolean", self.text)),
            Err(e) => Err(format!("expression {:?} failed: {e}", self.text)),
        }
    }

    /// Evaluates to a string, if it does.
    pub(crate) fn string(&self, ctx: &Context<'_>) -> Option<String> {
        match self.program.execute(ctx) {
            Ok(Cel::String(s)) => Some(s.as_str().to_string()),
            _ => None,
        }
    }
}

/// A context with the Kubernetes CEL library and `bindings` as variables.
pub(crate) fn context(bindings: Vec<(&'static str, Cel)>) -> Context<'static> {
    let mut ctx = Context::default().with_all();
    for (name, value) in bindings {
        ctx.add_variable_from_value(name, value);
    }
    ctx
}

/// A CEL map from string keys.
pub(crate) fn map(entries: impl IntoIterator<Item = (String, Cel)>) -> Cel {
    let map: HashMap<Key, Cel> = entries.into_iter().map(|(k, v)| (Key::String(Arc::new(k)), v)).collect();
    Cel::Map(Map { map: Arc::new(map) })
}

/// Converts JSON to CEL, escaping the property names `schema` declares.
pub(crate) fn to_cel(value: &Value, schema: Option<&Value>) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            Cel::List(Arc::new(items.iter().map(|v| to_cel(v, item_schema)).collect()))
        }
        Value::Object(fields) => {
            let properties = schema.and_then(|s| s.get("properties"));
            let additional = schema.and_then(|s| s.get("additionalProperties")).filter(|a| a.is_object());
            map(fields.iter().map(|(key, child)| match properties.and_then(|p| p.get(key)) {
                Some(child_schema) => (escape(key), to_cel(child, Some(child_schema))),
                None => (key.clone(), to_cel(child, additional)),
            }))
        }
    }
}

/// The API server's escaping of a declared property name.
fn escape(name: &str) -> String {
    if RESERVED.contains(&name) {
        return format!("__{name}__");
    }
    name.replace("__", "__underscores__")
        .replace('.', "__dot__")
        .replace('-', "__dash__")
        .replace('/', "__slash__")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn map_keys_stay_verbatim_and_declared_names_are_escaped() {
        let schema = json!({"properties": {
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "a-b": {"type": "string"},
        }});
        let object = to_cel(&json!({"env": {"API_KEY": "x"}, "a-b": "y"}), Some(&schema));
        let ctx = context(vec![("o", object)]);
        let check = |e: &str| Expr::compile(e).and_then(|x| x.check(&ctx));
        assert_eq!(check("'API_KEY' in o.env"), Ok(true));
        assert_eq!(check("o.env.all(k, k.matches('(?i)api_?key'))"), Ok(true));
        assert_eq!(check("o.a__dash__b == 'y'"), Ok(true));
        assert!(check("o.nope == 1").is_err());
    }
}
