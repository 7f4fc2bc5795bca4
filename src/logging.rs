//! The process's log: text or JSON lines on stderr, with a level that can change while the node
//! runs (`POST /admin/v1/log-level/{level}`), named as the reference node names its levels.

use std::sync::OnceLock;

use tracing_subscriber::{
    EnvFilter, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the process's logger with `filter` (an `EnvFilter` directive) as its first filter;
/// `json` writes one JSON object per line. Call once, before anything logs; later calls change
/// nothing.
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = tracing_subscriber::fmt::layer()
        .with_writer(crate::redact::Stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry.with(text.json()).try_init()
    } else {
        registry.with(text).try_init()
    };
    // A process that already has a logger (a test binary) keeps it.
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// The filter directive for one of the reference node's log levels (TRACE, DEBUG, INFO, NOTICE,
/// WARN, ERROR, FATAL, NONE; any case). Gossipsub stays at errors above DEBUG: it warns once per
/// message a flooder sends.
pub fn level_filter(level: &str) -> Result<String, String> {
    let base = match level.trim().to_ascii_lowercase().as_str() {
        "trace" => return Ok("trace".into()),
        "debug" => return Ok("debug".into()),
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "fatal" => "error",
        "none" | "off" => return Ok("off".into()),
        _ => {
            return Err(format!(
                "{level:?} is not a log level: use TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, \
                 FATAL or NONE"
            ));
        }
    };
    Ok(format!("{base},libp2p_gossipsub=error"))
}

/// Changes the level of the running process's log.
pub fn set_level(level: &str) -> Result<(), String> {
    let directive = level_filter(level)?;
    let handle = FILTER
        .get()
        .ok_or("this process's log level cannot be changed (no reloadable logger)")?;
    let filter = EnvFilter::try_new(&directive).map_err(|e| e.to_string())?;
    handle
        .reload(filter)
        .map_err(|e| format!("cannot change the log level: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_levels_map_to_filters() {
        assert_eq!(level_filter("DEBUG").unwrap(), "debug");
        assert_eq!(
            level_filter("Notice").unwrap(),
            "info,libp2p_gossipsub=error"
        );
        assert_eq!(
            level_filter("FATAL").unwrap(),
            "error,libp2p_gossipsub=error"
        );
        assert_eq!(level_filter("none").unwrap(), "off");
        assert!(level_filter("loud").is_err());
    }
}
