//! What stands between the REST API and callers it should not trust.
//!
//! - **Host allow-list** (DNS rebinding): a web page can make a browser send requests to a
//!   name that resolves to 127.0.0.1, but the `Host` header still carries that name. An API
//!   bound to loopback answers only requests addressed to a loopback name (`localhost`,
//!   `127.0.0.1`, `::1`) unless more hosts are allowed; one bound beyond loopback checks the
//!   header only when an allow-list is given.
//! - **Admin token**: with one configured, every request that changes something needs
//!   `Authorization: Bearer <token>`. That is every POST, PUT and DELETE, and the GETs with a
//!   side effect: the ones that dial `peerAddr`, and the message reads, which hand out (and
//!   forget) what the node cached, as the reference node's routes do. Other GETs stay open.
//! - **Cross-origin requests** (CORS) are answered only for the origins given with
//!   `--rest-allow-origin` (wildcards `*` and `?`, with or without the scheme, as the reference
//!   node takes them): a preflight from another origin is refused, and other responses carry no
//!   `Access-Control-Allow-Origin`, so browsers keep pages of other sites out.
//! - **Admin routes** (`/admin/...`) answer 404 when turned off with `--rest-admin false`.
//! - **Timeouts**: a request that takes longer than the limit is answered 504 and its work
//!   dropped, so slow peers behind `peerAddr` cannot pile requests up.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// How the API is guarded.
#[derive(Debug, Clone)]
pub struct Access {
    /// The token write requests must carry; `None` leaves them open.
    pub admin_token: Option<String>,
    /// Host names (without port) requests may be addressed to; `None` accepts any.
    pub allowed_hosts: Option<Vec<String>>,
    /// The longest a request may take.
    pub timeout: Duration,
    /// Web origins allowed to call from a browser, as patterns with `*` and `?`.
    pub allow_origins: Vec<String>,
    /// Whether the `/admin` routes are served.
    pub admin_routes: bool,
    /// The filter service the filter routes use when a request names none.
    pub filter_node: Option<String>,
}

/// The names of this machine's loopback interface.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The default request time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Access {
    /// The default for an API bound to `ip`: only loopback names when bound to loopback (plus
    /// `extra_hosts`), any host beyond it unless `extra_hosts` names some; no token.
    pub fn for_address(ip: std::net::IpAddr, extra_hosts: &[String]) -> Self {
        let allowed_hosts = if ip.is_loopback() {
            let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
            hosts.extend(extra_hosts.iter().cloned());
            Some(hosts)
        } else if extra_hosts.is_empty() {
            None
        } else {
            Some(extra_hosts.to_vec())
        };
        Self {
            admin_token: None,
            allowed_hosts,
            timeout: DEFAULT_TIMEOUT,
            allow_origins: Vec::new(),
            admin_routes: true,
            filter_node: None,
        }
    }
}

/// The host part of a `Host` header: `name:port`, `[v6]:port`, `name` or `[v6]`.
fn host_of(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    value.rsplit_once(':').map_or(value, |(host, _)| host)
}

/// Whether the request changes something (or hands out cached state) and so needs the token.
fn needs_token(request: &Request) -> bool {
    if !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return true;
    }
    let path = request.uri().path();
    // Decoded as the handlers decode it, so `peer%41ddr=` is `peerAddr=` here too; a query
    // that does not decode is treated as naming a peer.
    let dials = request.uri().query().is_some() && {
        let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri());
        query.map_or(true, |q| q.0.iter().any(|(k, _)| k == "peerAddr"))
    };
    let drains = path.starts_with("/relay/v1/messages/")
        || path.starts_with("/relay/v1/auto/messages/")
        || path.starts_with("/filter/v2/messages/");
    dials || drains
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters and `?` for
/// one; ASCII case is ignored.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (
        pattern.to_ascii_lowercase().chars().collect(),
        text.to_ascii_lowercase().chars().collect(),
    );
    // Iterative matching with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a browser origin (`scheme://host[:port]`) is allowed by one of the patterns, which
/// may leave the scheme out.
fn origin_allowed(patterns: &[String], origin: &str) -> bool {
    let bare = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    patterns
        .iter()
        .any(|p| glob(p.trim(), origin) || glob(p.trim(), bare))
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: host check, CORS, admin routes, token check, then the route under the time
/// limit.
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .filter(|o| origin_allowed(&access.allow_origins, o))
        .map(str::to_owned);
    let mut response = checked(&access, request, next, origin.is_some()).await;
    if let Some(origin) = origin
        && let Ok(value) = header::HeaderValue::from_str(&origin)
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    response
}

async fn checked(access: &Access, request: Request, next: Next, origin_allowed: bool) -> Response {
    if let Some(allowed) = &access.allowed_hosts {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_of);
        if !host.is_some_and(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h))) {
            return (
                StatusCode::FORBIDDEN,
                "this API does not answer requests for that host name; allow it with \
                 --rest-allowed-host",
            )
                .into_response();
        }
    }
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !origin_allowed {
            return (
                StatusCode::FORBIDDEN,
                "this origin may not call the API from a browser; allow it with \
                 --rest-allow-origin",
            )
                .into_response();
        }
        let asked = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(header::HeaderValue::from_static(
                "Content-Type, Authorization",
            ));
        return (
            StatusCode::NO_CONTENT,
            [
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    header::HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
                ),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, asked),
                (
                    header::ACCESS_CONTROL_MAX_AGE,
                    header::HeaderValue::from_static("600"),
                ),
            ],
        )
            .into_response();
    }
    if !access.admin_routes && request.uri().path().starts_with("/admin/") {
        return (
            StatusCode::NOT_FOUND,
            "the admin routes are turned off (--rest-admin false)",
        )
            .into_response();
    }
    if let Some(token) = &access.admin_token
        && needs_token(&request)
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "this request needs the admin token: Authorization: Bearer <token>",
            )
                .into_response();
        }
    }
    match tokio::time::timeout(access.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request took longer than {} s and was dropped",
                access.timeout.as_secs_f64()
            ),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_ports() {
        assert_eq!(host_of("localhost:8645"), "localhost");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8645"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
        assert_eq!(host_of("evil.example:80"), "evil.example");
    }

    #[test]
    fn loopback_apis_answer_loopback_names_only_by_default() {
        let local = Access::for_address("127.0.0.1".parse().unwrap(), &[]);
        assert_eq!(local.allowed_hosts.as_ref().unwrap().len(), 3);
        let open = Access::for_address("0.0.0.0".parse().unwrap(), &[]);
        assert!(open.allowed_hosts.is_none());
        let named = Access::for_address("0.0.0.0".parse().unwrap(), &["node.example".into()]);
        assert_eq!(
            named.allowed_hosts.unwrap(),
            vec!["node.example".to_owned()]
        );
    }

    #[test]
    fn writes_and_side_effects_need_the_token() {
        let request = |method: Method, uri: &str| {
            Request::builder()
                .method(method)
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert!(needs_token(&request(
            Method::POST,
            "/relay/v1/subscriptions"
        )));
        assert!(needs_token(&request(
            Method::DELETE,
            "/relay/v1/subscriptions"
        )));
        assert!(needs_token(&request(
            Method::GET,
            "/store/v3/messages?peerAddr=/ip4/1.2.3.4/tcp/1/p2p/x"
        )));
        assert!(needs_token(&request(
            Method::GET,
            "/relay/v1/messages/%2Fwaku"
        )));
        assert!(needs_token(&request(
            Method::GET,
            "/filter/v2/messages/%2Fa"
        )));
        assert!(needs_token(&request(
            Method::GET,
            "/store/v3/messages?pageSize=1&peer%41ddr=/ip4/1.2.3.4/tcp/1/p2p/x"
        )));
        assert!(!needs_token(&request(Method::GET, "/health")));
        assert!(!needs_token(&request(
            Method::GET,
            "/store/v3/messages?pageSize=5"
        )));
        assert!(!needs_token(&request(Method::GET, "/admin/v1/peers")));
    }

    #[test]
    fn origins_match_the_reference_nodes_patterns() {
        let patterns = vec![
            "localhost:*".to_owned(),
            "logos-messaging.github.io".to_owned(),
        ];
        assert!(origin_allowed(&patterns, "http://localhost:3000"));
        assert!(origin_allowed(
            &patterns,
            "https://logos-messaging.github.io"
        ));
        assert!(!origin_allowed(&patterns, "https://evil.example"));
        assert!(!origin_allowed(&patterns, "http://localhost.evil.example"));
        assert!(!origin_allowed(&[], "http://localhost:3000"));
        assert!(glob("127.0.0.?:80*", "127.0.0.1:8080"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "acd"));
        assert!(glob("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaab"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3creT"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
    }
}
