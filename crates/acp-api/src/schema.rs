//! Schema fragments that schemars cannot express with attributes alone, and the
//! final clean-up that makes generated CRDs behave like the existing platform's.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::Value;

/// Pattern for git repository URLs: `https://`, `http://`, `ssh://`, `git://`,
/// `file://`, or scp-like `user@host:path`.
pub const GIT_URL_PATTERN: &str = r"^((https?|ssh|git|file)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$";

/// CEL rule rejecting `..` path segments (path traversal out of the repository).
pub const NO_DOT_DOT_RULE: &str = r"!self.matches('(^|/)\\.\\.(/|$)')";

/// `object` whose values are free-form objects, as the existing platform's
/// `mcpServers.custom` (stdio, http or sse server definitions).
pub fn map_of_free_form_objects(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}

/// Removes `nullable: true` everywhere.
///
/// schemars marks every `Option` nullable; the existing platform's CRD does not.
/// Without `nullable`, the API server prunes an explicit `null` and then applies
/// the field's default, which is what manifests written for that platform expect.
pub fn strip_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
            }
            map.values_mut().for_each(strip_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}
