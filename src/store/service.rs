//! The store service: answers Store v3 queries from the archive, off the swarm task so it never
//! waits for the database.

use std::sync::Arc;

use super::{
    Archive, ArchiveError,
    protocol::{self as store_protocol, status},
};
use crate::proto::store::{StoreQueryRequest, StoreQueryResponse};

/// Answers one store request from `archive` (a node without one answers 503).
pub async fn answer(
    archive: Option<Arc<Archive>>,
    request: StoreQueryRequest,
) -> StoreQueryResponse {
    let id = request.request_id.clone();
    let Some(archive) = archive else {
        return store_protocol::error_of(
            id,
            status::UNAVAILABLE,
            "this node keeps no message archive",
        );
    };
    let query = match store_protocol::query_of(&request) {
        Ok(q) => q,
        Err(reason) => {
            return store_protocol::error_of(id, status::BAD_REQUEST, reason.to_string());
        }
    };
    match archive.query(&query).await {
        Ok(page) => store_protocol::response_of(id, &page),
        Err(ArchiveError::BadQuery(reason)) => {
            store_protocol::error_of(id, status::BAD_REQUEST, reason)
        }
        Err(e) => {
            tracing::warn!(error = %e, "store query failed");
            store_protocol::error_of(id, status::INTERNAL, "the archive failed")
        }
    }
}
