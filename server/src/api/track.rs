//! `/t/…`: the links in sent messages (MA-6). Public: whoever holds a message may use its
//! links, and the signature in each (made by the engine's `Tracker`) is what makes it valid.
//!
//! - `GET /t/o/{delivery}/{contact}/{signature}.gif`: the open pixel, always a 1×1 GIF.
//! - `GET /t/c/{delivery}/{contact}/{signature}?u=URL`: a click, redirected to URL only when
//!   the signature covers that URL (never an open redirect).
//! - `GET /t/u/{delivery}/{contact}/{signature}`: a page to confirm unsubscribing;
//!   `POST` (the page's button, or a mail client's RFC 8058 one-click) unsubscribes.
//! - `POST /t/s/{delivery}/{contact}/{signature}`: an SMS provider's status callback
//!   (`MessageStatus`, `ErrorCode`), recorded as a `delivered` or `bounced` event.
//!
//! One address that uses more than `AppState::tracking_throttle` allows still gets its pixel
//! and its redirect (a reader must never meet a broken link), but its opens and clicks are not
//! recorded until the minute is over, and its unsubscribes are answered 429: a flood cannot
//! fill the database. Provider callbacks are signed per delivery and not limited.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;

use super::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tabiji_engine::personalise::LinkKind;
use tabiji_engine::runtime::LinkUse;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Whether the caller's address is within the tracking limit (and counts this request).
fn within_limit(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Result<(), ApiError> {
    let ip = super::client_ip(headers, peer, state.behind_proxy);
    match state.tracking_throttle.hit(ip, Instant::now()) {
        None => Ok(()),
        Some(wait) => Err(ApiError::RateLimited(wait)),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/t/o/{delivery}/{contact}/{signature}", get(opened))
        .route("/t/c/{delivery}/{contact}/{signature}", get(clicked))
        .route(
            "/t/u/{delivery}/{contact}/{signature}",
            get(confirm_unsubscribe).post(unsubscribe),
        )
        .route("/t/s/{delivery}/{contact}/{signature}", post(status))
}

/// A status callback's form (Twilio posts `MessageStatus` and, on failure, `ErrorCode`).
#[derive(Deserialize)]
struct StatusReport {
    #[serde(rename = "MessageStatus")]
    message_status: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
}

/// A provider reports what became of a delivery: `delivered`, or `undelivered`/`failed`
/// (a `bounced` event). Only a signed address is believed.
async fn status(
    State(state): State<AppState>,
    Path((delivery, contact, signature)): Path<(i64, i64, String)>,
    Form(report): Form<StatusReport>,
) -> ApiResult<Response> {
    let signed = match state.runtime.tracker().await? {
        Some(tracker) => tracker.verify(LinkKind::Status, delivery, contact, "", &signature),
        None => false,
    };
    if !signed {
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let Some(status) = report.message_status else {
        return Ok(StatusCode::BAD_REQUEST.into_response());
    };
    let error_code = report.error_code.filter(|c| !c.is_empty());
    if !state
        .runtime
        .track(delivery, contact, LinkUse::Status { status, error_code })
        .await?
    {
        return Ok(StatusCode::NOT_FOUND.into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A transparent 1×1 GIF.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em\">{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn damaged() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "リンクが無効です / Invalid link",
        "<h1>リンクが無効です</h1><p>このリンクは壊れているか、変更されています。メールのリンクをそのままお使いください。</p>\
         <h2>This link is not valid</h2><p>It is damaged or was changed. Please use the link exactly as it is in the message.</p>",
    )
}

async fn opened(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((delivery, contact, signature)): Path<(i64, i64, String)>,
) -> ApiResult<Response> {
    let signature = signature.trim_end_matches(".gif");
    if within_limit(&state, &headers, peer).is_ok()
        && let Some(tracker) = state.runtime.tracker().await?
        && tracker.verify(LinkKind::Open, delivery, contact, "", signature)
        && let Err(e) = state
            .runtime
            .track(delivery, contact, LinkUse::Opened)
            .await
    {
        tracing::warn!(error = %e, delivery, "an open could not be recorded");
    }
    // Always the image: a damaged pixel must not show as a broken picture in the mail.
    Ok((
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store, max-age=0"),
        ],
        PIXEL,
    )
        .into_response())
}

#[derive(Deserialize)]
struct Destination {
    u: Option<String>,
}

async fn clicked(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((delivery, contact, signature)): Path<(i64, i64, String)>,
    Query(destination): Query<Destination>,
) -> ApiResult<Response> {
    let Some(url) = destination.u else {
        return Ok(damaged());
    };
    let Some(tracker) = state.runtime.tracker().await? else {
        return Ok(damaged());
    };
    let web = url.starts_with("https://") || url.starts_with("http://");
    if !web || !tracker.verify(LinkKind::Click, delivery, contact, &url, &signature) {
        return Ok(damaged());
    }
    // The reader goes where the link says even when recording the click fails or is shed.
    if within_limit(&state, &headers, peer).is_ok()
        && let Err(e) = state
            .runtime
            .track(delivery, contact, LinkUse::Clicked { url: url.clone() })
            .await
    {
        tracing::warn!(error = %e, delivery, "a click could not be recorded");
    }
    let mut response = StatusCode::FOUND.into_response();
    let location = HeaderValue::from_str(&url).map_err(|_| {
        crate::error::ApiError::BadRequest("the link's address cannot be followed".into())
    })?;
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn valid_unsubscribe(
    state: &AppState,
    delivery: i64,
    contact: i64,
    signature: &str,
) -> ApiResult<bool> {
    Ok(match state.runtime.tracker().await? {
        Some(tracker) => tracker.verify(LinkKind::Unsubscribe, delivery, contact, "", signature),
        None => false,
    })
}

async fn confirm_unsubscribe(
    State(state): State<AppState>,
    Path((delivery, contact, signature)): Path<(i64, i64, String)>,
) -> ApiResult<Response> {
    if !valid_unsubscribe(&state, delivery, contact, &signature).await? {
        return Ok(damaged());
    }
    // Only a POST unsubscribes: link scanners and prefetchers open every link with GET.
    Ok(page(
        StatusCode::OK,
        "配信停止 / Unsubscribe",
        "<h1>配信停止</h1><p>このチャネルでのご案内の配信を停止します。</p>\
         <form method=\"post\"><button type=\"submit\" style=\"font-size:1.1em;padding:.5em 1.5em\">配信を停止する / Unsubscribe</button></form>\
         <p lang=\"en\">Press the button to stop receiving these messages.</p>",
    ))
}

async fn unsubscribe(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((delivery, contact, signature)): Path<(i64, i64, String)>,
) -> ApiResult<Response> {
    within_limit(&state, &headers, peer)?;
    if !valid_unsubscribe(&state, delivery, contact, &signature).await? {
        return Ok(damaged());
    }
    if !state
        .runtime
        .track(delivery, contact, LinkUse::Unsubscribed)
        .await?
    {
        return Ok(damaged());
    }
    Ok(page(
        StatusCode::OK,
        "配信を停止しました / Unsubscribed",
        "<h1>配信を停止しました</h1><p>今後、このチャネルでのご案内はお送りしません。</p>\
         <p lang=\"en\">You will not receive these messages any more.</p>",
    ))
}
