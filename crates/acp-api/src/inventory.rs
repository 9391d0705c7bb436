//! A SessionSource's inventory: the objects it applied and owns (the basis of
//! pruning, and what the status bot and pull-request commands trust), kept
//! bounded in size.
//!
//! A status object lives in etcd, whose objects are limited to 1.5 MiB: a
//! list of entries (about 150 bytes each) would reach it near 10,000 sessions.
//! So the wire form depends on the length: up to [`INLINE_MAX`] entries, the
//! readable list `status.inventory`; beyond, `status.compactInventory`: the
//! entries as tab-separated lines, gzip-compressed and base64-encoded.
//! Entries of one source share their kind, namespace, directory and mostly
//! their revision, so they compress to a few bytes each (about 8: 20,000
//! sessions take about 150 KiB, so a source holds some 150,000 before its
//! status nears the limit; the test below measures it). In memory it is
//! always the list.

use std::io::{Read as _, Write as _};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Entries kept as a readable list; longer inventories are compacted.
pub const INLINE_MAX: usize = 500;
/// The encoding of [`CompactInventory::data`].
pub const ENCODING: &str = "tsv+gzip+base64";
/// Largest decompressed inventory accepted (a guard against a gzip bomb).
const MAX_DECODED: u64 = 256 << 20;

/// One object applied by a source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// Object kind.
    pub kind: String,
    /// Object namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Repository-relative file path the object came from.
    pub path: String,
    /// Commit the object was last applied from.
    pub revision: String,
}

/// The inventory: a list in memory, a bounded form on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory(pub Vec<InventoryEntry>);

/// A long inventory on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactInventory {
    /// How many entries `data` holds.
    pub entries: i64,
    /// How `data` is encoded: `tsv+gzip+base64` (one line per entry: kind,
    /// namespace, name, path, revision, tab-separated).
    pub encoding: String,
    /// The entries, encoded.
    pub data: String,
}

/// The wire form: one of the two fields.
#[derive(Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryWire {
    /// Objects this source applied and owns (while there are few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inventory: Vec<InventoryEntry>,
    /// Objects this source applied and owns, compacted (when there are many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compact_inventory: Option<CompactInventory>,
}

/// A compact inventory that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not the encoding this version writes.
    #[error("failed to read the compact inventory: unknown encoding {0:?}")]
    Encoding(String),
    /// Corrupt base64 or gzip data.
    #[error("failed to read the compact inventory: {0}")]
    Data(String),
    /// A line without five fields.
    #[error("failed to read the compact inventory: line {0} does not have five fields")]
    Line(usize),
    /// Fewer or more entries than declared (cut short, say).
    #[error("failed to read the compact inventory: {found} entries where {declared} were declared")]
    Count {
        /// `entries`.
        declared: i64,
        /// Lines decoded.
        found: usize,
    },
}

impl std::ops::Deref for Inventory {
    type Target = Vec<InventoryEntry>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Inventory {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl IntoIterator for Inventory {
    type Item = InventoryEntry;
    type IntoIter = std::vec::IntoIter<InventoryEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Inventory {
    type Item = &'a InventoryEntry;
    type IntoIter = std::slice::Iter<'a, InventoryEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<InventoryEntry>> for Inventory {
    fn from(entries: Vec<InventoryEntry>) -> Self {
        Self(entries)
    }
}

impl CompactInventory {
    /// Encodes `entries`. A git path may hold any byte but NUL, so `%`, tab,
    /// newline and carriage return in a field are percent-escaped.
    pub fn encode(entries: &[InventoryEntry]) -> Self {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for e in entries {
            let fields = [&e.kind, &e.namespace, &e.name, &e.path, &e.revision].map(|f| escape(f));
            // Writing into a Vec cannot fail.
            let _ = writeln!(gz, "{}", fields.join("\t"));
        }
        let bytes = gz.finish().unwrap_or_default();
        Self {
            entries: i64::try_from(entries.len()).unwrap_or(i64::MAX),
            encoding: ENCODING.into(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// Decodes the entries.
    pub fn decode(&self) -> Result<Vec<InventoryEntry>, DecodeError> {
        if self.encoding != ENCODING {
            return Err(DecodeError::Encoding(self.encoding.clone()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| DecodeError::Data(e.to_string()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .take(MAX_DECODED)
            .read_to_string(&mut text)
            .map_err(|e| DecodeError::Data(e.to_string()))?;
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                let fields: Vec<&str> = line.split('\t').collect();
                let [kind, namespace, name, path, revision] = fields[..] else {
                    return Err(DecodeError::Line(i + 1));
                };
                Ok(InventoryEntry {
                    kind: unescape(kind),
                    namespace: unescape(namespace),
                    name: unescape(name),
                    path: unescape(path),
                    revision: unescape(revision),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|entries| {
                if i64::try_from(entries.len()).ok() == Some(self.entries) {
                    Ok(entries)
                } else {
                    Err(DecodeError::Count { declared: self.entries, found: entries.len() })
                }
            })
    }
}

/// `%`, tab, newline and carriage return as `%25`, `%09`, `%0A`, `%0D`.
fn escape(field: &str) -> std::borrow::Cow<'_, str> {
    if !field.contains(['%', '\t', '\n', '\r']) {
        return field.into();
    }
    let mut out = String::with_capacity(field.len() + 6);
    for c in field.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\t' => out.push_str("%09"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
    out.into()
}

fn unescape(field: &str) -> String {
    if !field.contains('%') {
        return field.to_owned();
    }
    field.replace("%09", "\t").replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
}

impl Serialize for Inventory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = if self.0.len() <= INLINE_MAX {
            InventoryWire { inventory: self.0.clone(), compact_inventory: None }
        } else {
            InventoryWire {
                inventory: Vec::new(),
                compact_inventory: Some(CompactInventory::encode(&self.0)),
            }
        };
        wire.serialize(serializer)
    }
}

/// An unreadable compact inventory reads as empty rather than failing the
/// whole SessionSource (which would stop every reader of every source). That
/// is the safe side: pruning deletes only inventory entries, so it prunes
/// nothing; the status bot vouches for no session by it; and git-sync's next
/// sync writes a fresh inventory of what it applied.
impl<'de> Deserialize<'de> for Inventory {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = InventoryWire::deserialize(deserializer)?;
        Ok(Self(match wire.compact_inventory {
            // The compact form, when present, is the whole inventory.
            Some(compact) => compact.decode().unwrap_or_default(),
            None => wire.inventory,
        }))
    }
}

impl JsonSchema for Inventory {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        InventoryWire::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        InventoryWire::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<InventoryEntry> {
        (0..n)
            .map(|i| InventoryEntry {
                kind: "AgenticSession".into(),
                namespace: "team-a".into(),
                name: format!("session-{i:05}"),
                path: format!("sessions/session-{i:05}.yaml"),
                revision: if i % 100 == 0 { "0".repeat(40) } else { "f".repeat(40) },
            })
            .collect()
    }

    #[test]
    fn a_short_inventory_is_a_readable_list_and_a_long_one_compact() {
        let short = Inventory(entries(3));
        let json = serde_json::to_value(&short).expect("json");
        assert_eq!(json["inventory"][1]["name"], "session-00001");
        assert!(json.get("compactInventory").is_none());
        let long = Inventory(entries(INLINE_MAX + 1));
        let json = serde_json::to_value(&long).expect("json");
        assert!(json.get("inventory").is_none());
        assert_eq!(json["compactInventory"]["entries"], INLINE_MAX + 1);
        let back: Inventory = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, long);
    }

    #[test]
    fn twenty_thousand_sessions_stay_far_below_etcds_object_limit() {
        let many = Inventory(entries(20_000));
        let bytes = serde_json::to_vec(&many).expect("json").len();
        let plain = serde_json::to_vec(&many.0).expect("json").len();
        println!("20,000 entries: {bytes} bytes compact, {plain} bytes as a list");
        assert!(plain > 1_572_864, "as a list they would not fit in etcd ({plain} bytes)");
        assert!(bytes < 256 * 1024, "compact: {bytes} bytes");
        let back: Inventory =
            serde_json::from_slice(&serde_json::to_vec(&many).expect("json")).expect("back");
        assert_eq!(back, many);
    }

    #[test]
    fn an_unreadable_compact_inventory_reads_as_empty_and_says_why() {
        let bad = CompactInventory { entries: 1, encoding: ENCODING.into(), data: "bm90IGd6aXA=".into() };
        assert!(
            bad.decode().expect_err("corrupt").to_string().contains("failed to read the compact inventory")
        );
        let other = CompactInventory { encoding: "zstd".into(), ..bad.clone() };
        assert!(other.decode().expect_err("unknown").to_string().contains("zstd"));
        let mut short = CompactInventory::encode(&entries(3));
        short.entries = 4;
        assert!(short.decode().expect_err("count").to_string().contains("3 entries where 4"));
        // The source still reads: the inventory is empty, so nothing is pruned by it.
        let json = serde_json::json!({"inventory": [], "compactInventory": bad});
        assert!(serde_json::from_value::<Inventory>(json).expect("a source still reads").is_empty());
    }

    #[test]
    fn any_path_git_allows_survives_the_compact_form() {
        let mut odd = entries(INLINE_MAX + 1);
        odd[7].path = "sessions/tab\there/new\nline/100%25/cr\r.yaml".into();
        let back: Inventory =
            serde_json::from_value(serde_json::to_value(Inventory(odd.clone())).expect("json"))
                .expect("back");
        assert_eq!(back.0, odd);
    }
}
