//! Where runner pods may connect (pure): one NetworkPolicy per namespace,
//! [`runner_pod::EGRESS_POLICY`], selecting the runner pods acp creates.
//! Egress is denied but for DNS (port 53 to `kube-system`) and the configured
//! destinations, by default the public internet on 443 and 22: no cloud
//! metadata endpoint, no node, no pod or Service of the cluster (private,
//! shared and link-local ranges are excluded).
//!
//! The policy is enforced by the cluster's network plugin; one without
//! NetworkPolicy support (plain bridge networking) ignores it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use acp_api::constants::{labels, runner_pod};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The destinations allowed when none are configured.
pub const DEFAULT: &[&str] = &["public:443", "public:22"];
/// IPv4 ranges that are not the public internet.
const PRIVATE_V4: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"];
/// IPv6 ranges that are not the public internet.
const PRIVATE_V6: &[&str] = &["fc00::/7", "fe80::/10", "::1/128"];

/// What the operator does about runner egress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Egress {
    /// Leave it to the cluster (`off`): no policy is created.
    Unmanaged,
    /// Deny all but DNS and these.
    Allow(Vec<Destination>),
}

impl Default for Egress {
    fn default() -> Self {
        Egress::parse(DEFAULT.iter().copied()).unwrap_or(Egress::Unmanaged)
    }
}

/// One allowed destination: addresses, and a TCP port or all ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Where.
    pub to: Addresses,
    /// TCP port; every port and protocol when `None`.
    pub port: Option<u16>,
}

/// Addresses of a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// Every address outside the private, shared and link-local ranges.
    Public,
    /// One CIDR block.
    Cidr(String),
}

/// A destination that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "failed to read runner egress destination {entry:?}: {reason} (expected public, CIDR, public:PORT or CIDR:PORT, or off)"
)]
pub struct ParseError {
    /// The entry.
    pub entry: String,
    /// What is wrong.
    pub reason: String,
}

impl Egress {
    /// Reads destinations (`public`, `10.0.0.0/8`, `public:443`,
    /// `2001:db8::/32:443`); `off` alone leaves egress unmanaged.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let entries: Vec<&str> =
            entries.into_iter().flat_map(|e| e.split(',')).map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries == ["off"] {
            return Ok(Egress::Unmanaged);
        }
        entries.into_iter().map(Destination::parse).collect::<Result<_, _>>().map(Egress::Allow)
    }
}

impl Destination {
    fn parse(entry: &str) -> Result<Self, ParseError> {
        let fail = |reason: &str| ParseError { entry: entry.to_owned(), reason: reason.to_owned() };
        // The port follows the prefix length (`/N:PORT`), or `public:`.
        let (addresses, port) = match entry.split_once('/') {
            Some((ip, rest)) => match rest.split_once(':') {
                Some((bits, port)) => (format!("{ip}/{bits}"), Some(port)),
                None => (entry.to_owned(), None),
            },
            None => match entry.split_once(':') {
                Some((word, port)) => (word.to_owned(), Some(port)),
                None => (entry.to_owned(), None),
            },
        };
        let port = port
            .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| fail("the port is not 1-65535")))
            .transpose()?;
        let to = if addresses == "public" {
            Addresses::Public
        } else {
            let (ip, bits) = addresses.split_once('/').ok_or_else(|| fail("a CIDR needs a prefix length"))?;
            let ip: IpAddr = ip.parse().map_err(|_| fail("not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            bits.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| fail("bad prefix length"))?;
            Addresses::Cidr(addresses)
        };
        Ok(Self { to, port })
    }

    fn rule(&self) -> NetworkPolicyEgressRule {
        let block = |cidr: &str, except: &[&str]| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_owned(),
                except: (!except.is_empty()).then(|| except.iter().map(|e| (*e).to_owned()).collect()),
            }),
            ..NetworkPolicyPeer::default()
        };
        let to = match &self.to {
            Addresses::Public => vec![block("0.0.0.0/0", PRIVATE_V4), block("::/0", PRIVATE_V6)],
            Addresses::Cidr(cidr) => vec![block(cidr, &[])],
        };
        NetworkPolicyEgressRule { to: Some(to), ports: self.port.map(|p| vec![tcp(p)]) }
    }
}

fn tcp(port: u16) -> NetworkPolicyPort {
    port_of(port, "TCP")
}

fn port_of(port: u16, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    }
}

/// The policy for runner pods in `namespace` allowing `allowed`.
pub fn network_policy(namespace: &str, allowed: &[Destination]) -> NetworkPolicy {
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    "kube-system".to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port_of(53, "UDP"), port_of(53, "TCP")]),
    };
    let mut egress = vec![dns];
    egress.extend(allowed.iter().map(Destination::rule));
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(runner_pod::EGRESS_POLICY.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                labels::MANAGED_BY.to_owned(),
                labels::MANAGED_BY_VALUE.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(runner_pods()),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(egress),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Pods of runs: managed by acp and labelled with their session.
fn runner_pods() -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        )])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: labels::SESSION.to_owned(),
            operator: "Exists".into(),
            values: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_destinations_and_refuses_nonsense() {
        let Egress::Allow(allowed) =
            Egress::parse(["public:443,10.1.2.3/32", "2001:db8::/32:8443"]).expect("valid")
        else {
            panic!("allow");
        };
        assert_eq!(
            allowed,
            [
                Destination { to: Addresses::Public, port: Some(443) },
                Destination { to: Addresses::Cidr("10.1.2.3/32".into()), port: None },
                Destination { to: Addresses::Cidr("2001:db8::/32".into()), port: Some(8443) },
            ]
        );
        assert_eq!(Egress::parse(["off"]).expect("off"), Egress::Unmanaged);
        assert_eq!(Egress::parse(Vec::<&str>::new()).expect("none"), Egress::Allow(Vec::new()));
        for bad in ["10.0.0.1", "10.0.0.0/33", "public:0", "public:http", "example.com:443", "off,public"] {
            assert!(Egress::parse([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_denies_the_cluster_and_the_metadata_endpoint() {
        let Egress::Allow(allowed) = Egress::default() else { panic!("the default manages egress") };
        let policy = serde_json::to_value(network_policy("team", &allowed)).expect("json");
        assert_eq!(policy["metadata"]["name"], "acp-runner-egress");
        let spec = &policy["spec"];
        assert_eq!(spec["policyTypes"], json!(["Egress"]));
        assert_eq!(spec["podSelector"]["matchExpressions"][0]["key"], "ambient-code.io/session");
        let rules = spec["egress"].as_array().expect("rules");
        assert_eq!(rules.len(), 3, "DNS, then 443 and 22");
        assert_eq!(
            rules[0]["ports"],
            json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
        );
        let https = &rules[1];
        assert_eq!(https["ports"], json!([{"port": 443, "protocol": "TCP"}]));
        let except = https["to"][0]["ipBlock"]["except"].as_array().expect("except");
        for blocked in ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
            assert!(except.contains(&json!(blocked)), "{blocked} is not public");
        }
    }
}
