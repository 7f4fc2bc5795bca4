//! The reference node's option values that need more than a rename: its retention policy,
//! message size, NAT and entry-node syntaxes, and the options this node accepts
//! without acting on them.

use serde::{Deserialize, Serialize};
use wakurln::store::Retention;

/// A value of an option this node accepts for compatibility but does not act on: whatever the
/// flag or the TOML file gave (a TOML file may give a boolean, a number or a list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Loose {
    /// `true`/`false`.
    Bool(bool),
    /// A number.
    Int(i64),
    /// Text, as every flag gives it.
    Text(String),
    /// A TOML array.
    List(Vec<Loose>),
}

impl Loose {
    /// Whether the value turns a feature off (so ignoring it changes nothing).
    pub fn is_off(&self) -> bool {
        match self {
            Loose::Bool(b) => !b,
            Loose::Int(i) => *i == 0,
            Loose::Text(t) => {
                let t = t.trim().to_ascii_lowercase();
                matches!(t.as_str(), "false" | "0" | "no" | "off" | "")
            }
            Loose::List(items) => items.is_empty(),
        }
    }
}

/// clap's parser for [`Loose`] flags.
pub fn loose(text: &str) -> Result<Loose, std::convert::Infallible> {
    Ok(Loose::Text(text.to_owned()))
}

/// Parses the reference node's `--store-message-retention-policy`: `time:<seconds>`,
/// `capacity:<messages>` and `size:<n>(MB|GB)` (decimals allowed, 1024-based), joined by `;`,
/// whitespace ignored, each kind at most once.
pub fn retention_policy(text: &str) -> Result<Retention, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut retention = Retention::default();
    for part in compact.split(';').filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        let Some((kind, value)) = lower.split_once(':') else {
            return Err(format!(
                "{part:?} is not a retention policy: use time:<seconds>, capacity:<messages> or \
                 size:<n>MB|GB, joined by ';'"
            ));
        };
        let duplicate = || format!("the retention policy gives {kind} twice");
        match kind {
            "time" => {
                let secs = value
                    .parse()
                    .map_err(|_| format!("time:{value}: give whole seconds, e.g. time:172800"))?;
                if retention.max_age_secs.replace(secs).is_some() {
                    return Err(duplicate());
                }
            }
            "capacity" => {
                let n = value
                    .parse()
                    .map_err(|_| format!("capacity:{value}: give a number of messages"))?;
                if retention.max_messages.replace(n).is_some() {
                    return Err(duplicate());
                }
            }
            "size" => {
                let bytes = size_in_bytes(value)?;
                if retention.max_bytes.replace(bytes).is_some() {
                    return Err(duplicate());
                }
            }
            other => {
                return Err(format!(
                    "{other:?} is not a retention policy kind: use time, capacity or size"
                ));
            }
        }
    }
    if retention == Retention::default() {
        retention.max_age_secs = Some(172_800);
    }
    Ok(retention)
}

fn size_in_bytes(value: &str) -> Result<u64, String> {
    let (number, unit) = if let Some(n) = value.strip_suffix("gb") {
        (n, 1u64 << 30)
    } else if let Some(n) = value.strip_suffix("mb") {
        (n, 1u64 << 20)
    } else {
        return Err(format!(
            "size:{value}: give the size in MB or GB, e.g. size:1GB"
        ));
    };
    let n: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("size:{value}: {number:?} is not a positive number"))?;
    Ok((n * unit as f64) as u64)
}

/// Parses `--max-msg-size` as the reference node does: a number (`,` or `.` for decimals) and
/// a unit `B`, `KB` (1000) or `KiB` (1024).
pub fn message_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .ok_or_else(|| format!("--max-msg-size {text}: give a unit (B, KB or KiB)"))?;
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .replace(',', ".")
        .parse()
        .map_err(|_| format!("--max-msg-size {text}: {number:?} is not a number"))?;
    let factor = match unit.trim() {
        "B" | "b" => 1.0,
        "KB" | "kB" | "Kb" | "kb" => 1000.0,
        "KiB" | "kiB" | "Kib" | "kib" => 1024.0,
        other => {
            return Err(format!(
                "--max-msg-size {text}: unknown unit {other:?} (use B, KB or KiB)"
            ));
        }
    };
    Ok((number * factor) as u64)
}

/// What `--nat` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nat {
    /// Announce this IP address.
    ExtIp(std::net::IpAddr),
    /// A mechanism this node does not have (`any`, `upnp`, `pmp`).
    Unsupported(String),
    /// Nothing (`none`).
    None,
}

/// Parses `--nat`: `any`, `none`, `upnp`, `pmp` or `extip:<IP>`, case-insensitive.
pub fn nat(text: &str) -> Result<Nat, String> {
    let lower = text.trim().to_ascii_lowercase();
    if let Some(ip) = lower.strip_prefix("extip:") {
        let ip = ip.trim_matches('"');
        return ip
            .parse()
            .map(Nat::ExtIp)
            .map_err(|_| format!("--nat extip:{ip}: not an IP address"));
    }
    match lower.as_str() {
        "none" => Ok(Nat::None),
        "any" | "upnp" | "pmp" => Ok(Nat::Unsupported(lower)),
        _ => Err(format!(
            "--nat {text}: use any, none, upnp, pmp or extip:<IP address>"
        )),
    }
}

/// `--entry-node` values sorted as the reference node sorts them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EntryNodes {
    /// `enrtree://` URLs.
    pub trees: Vec<String>,
    /// `enr:` records.
    pub records: Vec<String>,
    /// Multiaddrs.
    pub addresses: Vec<String>,
}

/// Sorts `--entry-node` values into DNS trees, discv5 records and static peers.
pub fn entry_nodes(values: &[String]) -> Result<EntryNodes, String> {
    let mut sorted = EntryNodes::default();
    for v in values.iter().map(|v| v.trim()) {
        if v.starts_with("enrtree://") {
            sorted.trees.push(v.to_owned());
        } else if v.starts_with("enr:") {
            sorted.records.push(v.to_owned());
        } else if v.starts_with('/') {
            sorted.addresses.push(v.to_owned());
        } else {
            return Err(format!(
                "--entry-node {v}: give an enrtree:// URL, an enr: record or a multiaddr"
            ));
        }
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_policies_as_the_reference_node_writes_them() {
        let r = retention_policy("time:3600 ; capacity:10000 ; size     : 30GB").unwrap();
        assert_eq!(r.max_age_secs, Some(3600));
        assert_eq!(r.max_messages, Some(10_000));
        assert_eq!(r.max_bytes, Some(30 << 30));
        let r = retention_policy("size:1.5mb").unwrap();
        assert_eq!(r.max_bytes, Some(1_572_864));
        assert_eq!(r.max_age_secs, None);
        assert_eq!(
            retention_policy("").unwrap().max_age_secs,
            Some(172_800),
            "empty is the default, two days"
        );
        for bad in ["none", "size:10KB", "time:1h", "time:1;time:2", "age:5"] {
            assert!(retention_policy(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn message_sizes_and_nat_and_entry_nodes() {
        assert_eq!(message_size("150KiB").unwrap(), 153_600);
        assert_eq!(message_size("1500 B").unwrap(), 1500);
        assert_eq!(message_size("1,5KB").unwrap(), 1500);
        assert!(message_size("1MB").is_err());
        assert!(message_size("100").is_err());

        assert_eq!(
            nat("extip:203.0.113.7").unwrap(),
            Nat::ExtIp("203.0.113.7".parse().unwrap())
        );
        assert_eq!(nat("ANY").unwrap(), Nat::Unsupported("any".into()));
        assert_eq!(nat("none").unwrap(), Nat::None);
        assert!(nat("extip:nowhere").is_err());

        let e = entry_nodes(&[
            "enrtree://AB@example.org".into(),
            "enr:-abc".into(),
            "/ip4/1.2.3.4/tcp/1".into(),
        ])
        .unwrap();
        assert_eq!(
            (e.trees.len(), e.records.len(), e.addresses.len()),
            (1, 1, 1)
        );
        assert!(entry_nodes(&["example.org".into()]).is_err());

        assert!(Loose::Text("False".into()).is_off());
        assert!(!Loose::Bool(true).is_off());
    }
}
