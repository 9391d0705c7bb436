//! Parsing manifest files: multi-document YAML read with serde-saphyr, keeping
//! the line and column of every node so that a finding on `spec.timeout` can
//! be reported at the line that sets it.

use acp_api::source::FileError;
use acp_policy::{FieldPath, Segment};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Budget, Spanned};

/// A YAML node with its position.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(String, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
                i64::try_from(v).map(Node::Int).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Spanned<Node>>()? {
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

fn to_json(node: &Node) -> Value {
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::Number((*i).into()),
        Node::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(items.iter().map(|i| to_json(&i.value)).collect()),
        Node::Map(entries) => {
            Value::Object(entries.iter().map(|(k, v)| (k.clone(), to_json(&v.value))).collect::<Map<_, _>>())
        }
    }
}

fn position(location: &serde_saphyr::Location) -> (u32, u32) {
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    (clamp(location.line()), clamp(location.column()))
}

/// One YAML document of a file.
#[derive(Debug)]
pub struct Document {
    /// Repository-relative path of the file.
    pub path: String,
    /// 1-based line where the document starts.
    pub line: u32,
    /// The document as JSON.
    pub object: Value,
    root: Spanned<Node>,
}

impl Document {
    /// The line and column of `field`, or of its nearest ancestor that exists.
    pub fn locate(&self, field: &FieldPath) -> (u32, u32) {
        let mut node = &self.root;
        for segment in &field.0 {
            let next = match (&node.value, segment) {
                (Node::Map(entries), Segment::Key(key)) => {
                    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
                }
                (Node::Seq(items), Segment::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => break,
            }
        }
        position(&node.referenced)
    }

    /// A file error at `field` of this document.
    pub fn error_at(&self, field: &FieldPath, message: impl Into<String>) -> FileError {
        let (line, column) = self.locate(field);
        FileError {
            path: self.path.clone(),
            line: Some(line.into()),
            column: Some(column.into()),
            message: message.into(),
        }
    }
}

/// What parsing one manifest file may cost. Session manifests are small and
/// flat, so the limits are tight: an alias bomb, a nesting or document-count
/// storm fails that file alone (a per-file error), never the sync.
pub fn budget() -> Option<Budget> {
    serde_saphyr::budget! {
        max_events: 200_000,
        max_aliases: 256,
        max_anchors: 256,
        max_recorded_anchor_events: 10_000,
        max_recorded_anchor_bytes: 1 << 20,
        max_depth: 32,
        max_documents: 256,
        max_nodes: 100_000,
        max_total_scalar_bytes: 2 << 20,
        max_merge_keys: 256,
        enforce_alias_anchor_ratio: true,
        alias_anchor_min_aliases: 32,
        alias_anchor_ratio_multiplier: 8,
    }
}

/// Parses every document of `text` (read from `path`) within [`budget`].
/// Empty documents are skipped; a document that is not a mapping is an error.
pub fn parse(path: &str, text: &str) -> Result<Vec<Document>, FileError> {
    let mut options = serde_saphyr::Options::default();
    options.budget = budget();
    let roots: Vec<Spanned<Node>> = serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
        let location = e.location();
        // The first line of serde-saphyr's message is the summary; the rest is a snippet.
        let message =
            e.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
        FileError {
            path: path.to_string(),
            line: location.map(|l| position(&l).0.into()),
            column: location.map(|l| position(&l).1.into()),
            message: match message.split_once("budget breached: ") {
                Some((_, breach)) => format!(
                    "invalid YAML: refused, over the parsing budget of a manifest ({breach}): aliases, anchors, \
                     nesting, documents and size are limited per file"
                ),
                None => format!("invalid YAML: {message}"),
            },
        }
    })?;
    let mut documents = Vec::new();
    for root in roots {
        if !matches!(root.value, Node::Map(_)) {
            return Err(FileError {
                path: path.to_string(),
                line: Some(position(&root.referenced).0.into()),
                column: Some(position(&root.referenced).1.into()),
                message: "a manifest document must be a mapping with apiVersion, kind and metadata".into(),
            });
        }
        documents.push(Document {
            path: path.to_string(),
            line: position(&root.referenced).0,
            object: to_json(&root.value),
            root,
        });
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_lines() {
        let text = "# leading comment\napiVersion: v1\nkind: A\nspec:\n  repos:\n  - url: x\n    branch: y\n---\n---\nkind: B\n";
        let docs = parse("f.yaml", text).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[0].locate(&FieldPath::parse("spec.repos[0].branch")), (7, 13));
        assert_eq!(docs[0].locate(&FieldPath::parse("spec.repos[0].missing")).0, 6);
        assert_eq!(docs[1].object["kind"], "B");
    }

    #[test]
    fn malformed_yaml_reports_where() {
        let error = parse("bad.yaml", "a: 1\nb: [1,\n").expect_err("malformed");
        assert_eq!(error.line, Some(2));
        assert!(error.message.starts_with("invalid YAML:"), "{}", error.message);
        let error = parse("dup.yaml", "a: 1\na: 2\n").expect_err("duplicate key");
        assert!(error.message.contains("duplicate"), "{}", error.message);
        let error = parse("list.yaml", "- a\n- b\n").expect_err("not a mapping");
        assert!(error.message.contains("mapping"));
    }

    /// "Billion laughs": each level refers nine times to the one before.
    fn alias_bomb(levels: usize) -> String {
        let mut text =
            String::from("apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nl0: &l0 [lol]\n");
        for i in 1..=levels {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn an_alias_bomb_is_refused_within_the_budget() {
        let started = std::time::Instant::now();
        // 9^5 leaves (~66k nodes): under the parser's own generous defaults,
        // far over what a session manifest needs.
        let error = parse("bomb.yaml", &alias_bomb(5)).expect_err("over budget");
        assert_eq!(error.path, "bomb.yaml");
        assert!(error.message.starts_with("invalid YAML:"), "{}", error.message);
        assert!(error.message.contains("budget"), "{}", error.message);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "refused early: {:?}",
            started.elapsed()
        );
        // A few aliases, as a real manifest might use, are fine.
        assert!(parse("ok.yaml", &alias_bomb(1)).is_ok());
        let deep = format!("kind: A\nspec: {}1{}\n", "[".repeat(40), "]".repeat(40));
        assert!(parse("deep.yaml", &deep).expect_err("too deep").message.contains("budget"));
    }
}
