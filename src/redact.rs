//! Keeping secrets out of logs and error messages. RPC endpoint URLs often carry an API key in
//! their user info, path or query (`https://user:pass@host/v3/KEY?apikey=...`): such a URL is
//! shown as `https://***@host/***?***`, and every text the node prints (its log lines, the
//! errors a command reports, `/health`) is scrubbed of the secret parts of every URL it was
//! given, even when a library quotes the URL inside its own error.

use std::{
    borrow::Cow,
    io::Write,
    sync::{Mutex, PoisonError},
};

use alloy::transports::http::reqwest::Url;

/// Replacement text of a secret.
const HIDDEN: &str = "***";
/// Secrets remembered at most (each URL adds a few).
const MAX_SECRETS: usize = 256;
/// Path segments at least this long are treated as secrets on their own (API keys are long;
/// `v3` or `rpc` are not).
const SECRET_SEGMENT: usize = 8;

/// The secret texts to scrub, each with its replacement; longest first.
static SECRETS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// `url` without what may be secret: user info, path and query become `***`. A text that is
/// not a URL is hidden whole.
pub fn url(url: &str) -> String {
    let Ok(parsed) = Url::parse(url) else {
        return HIDDEN.to_owned();
    };
    let mut shown = format!("{}://", parsed.scheme());
    if !parsed.username().is_empty() || parsed.password().is_some() {
        shown.push_str(HIDDEN);
        shown.push('@');
    }
    shown.push_str(parsed.host_str().unwrap_or_default());
    if let Some(port) = parsed.port() {
        shown.push_str(&format!(":{port}"));
    }
    if !matches!(parsed.path(), "" | "/") {
        shown.push('/');
        shown.push_str(HIDDEN);
    }
    if parsed.query().is_some() {
        shown.push('?');
        shown.push_str(HIDDEN);
    }
    shown
}

/// Remembers the secret parts of `url`, so that [`scrub`] hides them wherever they appear.
pub fn register_url(raw: &str) {
    let shown = url(raw);
    let mut add = vec![(raw.to_owned(), shown.clone())];
    if let Ok(parsed) = Url::parse(raw) {
        add.push((parsed.as_str().to_owned(), shown.clone()));
        // Without the trailing slash a library may drop.
        add.push((parsed.as_str().trim_end_matches('/').to_owned(), shown));
        // User info as it appears before the host; alone, only when too long to be a word.
        let (user, password) = (parsed.username(), parsed.password().unwrap_or_default());
        let mut pieces = Vec::new();
        if !user.is_empty() || !password.is_empty() {
            pieces.push(format!("{user}:{password}@"));
            pieces.push(format!("{user}@"));
        }
        if user.len() >= SECRET_SEGMENT {
            pieces.push(user.to_owned());
        }
        if password.len() >= SECRET_SEGMENT / 2 {
            pieces.push(password.to_owned());
        }
        if !matches!(parsed.path(), "" | "/") {
            pieces.push(parsed.path().to_owned());
            pieces.extend(
                parsed
                    .path_segments()
                    .into_iter()
                    .flatten()
                    .filter(|s| s.len() >= SECRET_SEGMENT)
                    .map(str::to_owned),
            );
        }
        pieces.extend(parsed.query().map(str::to_owned));
        pieces.extend(parsed.fragment().map(str::to_owned));
        add.extend(
            pieces
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| (p, HIDDEN.to_owned())),
        );
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    for (secret, replacement) in add {
        if secret.is_empty() || secret == replacement || secrets.iter().any(|(s, _)| *s == secret) {
            continue;
        }
        if secrets.len() >= MAX_SECRETS {
            break;
        }
        secrets.push((secret, replacement));
    }
    secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
}

/// Remembers the password of a database URL (`postgres://user:password@host/db`): only the
/// password is secret, the user, host and database name are shown, as `shown`.
pub fn register_database_url(raw: &str, shown: &str) {
    let Ok(parsed) = Url::parse(raw) else {
        return;
    };
    let Some(password) = parsed.password().filter(|p| !p.is_empty()) else {
        return;
    };
    let user = parsed.username();
    let add = [
        (raw.to_owned(), shown.to_owned()),
        (format!("{user}:{password}@"), format!("{user}:{HIDDEN}@")),
        (password.to_owned(), HIDDEN.to_owned()),
    ];
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    for (secret, replacement) in add {
        // A one-letter password would hide every such letter: the URL forms still go.
        if secret.len() < 4 || secrets.iter().any(|(s, _)| *s == secret) {
            continue;
        }
        if secrets.len() >= MAX_SECRETS {
            break;
        }
        secrets.push((secret, replacement));
    }
    secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
}

/// `text` with every remembered secret hidden.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    if !secrets.iter().any(|(s, _)| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for (secret, replacement) in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), replacement);
        }
    }
    Cow::Owned(out)
}

/// A log writer that scrubs every line before it reaches stderr (for `tracing_subscriber`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stderr;

/// One log event being written.
#[derive(Debug, Default)]
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(scrub(&text).as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_user_info_path_or_query() {
        assert_eq!(
            url("https://alice:s3cret@rpc.example.org:8545/v3/0123456789abcdef?apikey=K#f"),
            "https://***@rpc.example.org:8545/***?***"
        );
        assert_eq!(url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(url("http://127.0.0.1:8545/"), "http://127.0.0.1:8545");
        assert_eq!(
            url("wss://node.example/ws/KEYKEYKEY"),
            "wss://node.example/***"
        );
        assert_eq!(url("not a url with a key"), "***");
    }

    #[test]
    fn a_database_url_hides_only_its_password() {
        let raw = "postgres://postgres:db-pass-77@db.example:5432/archive";
        register_database_url(raw, "postgres://postgres@db.example:5432/archive");
        let text = format!("tokio_postgres failed at {raw}; password db-pass-77");
        assert_eq!(
            scrub(&text),
            "tokio_postgres failed at postgres://postgres@db.example:5432/archive; password ***"
        );
    }

    #[test]
    fn scrubbing_hides_every_secret_part_wherever_it_is_quoted() {
        let raw = "https://bob:pa55word-xyz@scrub.example:1/v3/feedfacecafebeef?apikey=zzz-top";
        register_url(raw);
        let text = format!(
            "error sending request for url ({raw}): connection refused; \
             key feedfacecafebeef, password pa55word-xyz, query apikey=zzz-top"
        );
        let clean = scrub(&text);
        for secret in ["pa55word-xyz", "feedfacecafebeef", "apikey=zzz-top", "bob:"] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(
            clean.contains("https://***@scrub.example:1/***?***"),
            "{clean}"
        );
        assert_eq!(scrub("nothing secret here"), "nothing secret here");
    }
}
