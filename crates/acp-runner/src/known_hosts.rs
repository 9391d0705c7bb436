//! Matching an ssh server's host key against an OpenSSH `known_hosts` file.
//!
//! Supports plain host patterns (`host`, `host1,host2`, `[host]:port`) and
//! `@revoked` markers; hashed entries (`|1|…`) are not supported and never match.

use base64::Engine as _;

/// True when `known_hosts` lists `key` (raw key blob) for `host`.
pub fn matches(known_hosts: &str, host: &str, key: &[u8]) -> bool {
    let mut found = false;
    for line in known_hosts.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let mut hosts = fields.next().unwrap_or_default();
        let revoked = hosts == "@revoked";
        if hosts.starts_with('@') {
            hosts = fields.next().unwrap_or_default();
        }
        let (Some(_kind), Some(blob)) = (fields.next(), fields.next()) else { continue };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(blob) else { continue };
        let host_listed = hosts.split(',').any(|pattern| {
            pattern == host
                || pattern.strip_prefix('[').and_then(|p| p.split_once("]:")).is_some_and(|(h, _)| h == host)
        });
        if host_listed && blob == key {
            if revoked {
                return false;
            }
            found = true;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_listed_keys_only() {
        let key = b"key-bytes";
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        let file = format!(
            "# comment\ngit.example.com,10.0.0.1 ssh-ed25519 {encoded}\n[127.0.0.1]:2222 ssh-ed25519 {encoded}\n"
        );
        assert!(matches(&file, "git.example.com", key));
        assert!(matches(&file, "127.0.0.1", key));
        assert!(!matches(&file, "other.example.com", key));
        assert!(!matches(&file, "git.example.com", b"other-key"));
        let revoked = format!("{file}@revoked git.example.com ssh-ed25519 {encoded}\n");
        assert!(!matches(&revoked, "git.example.com", key));
    }
}
