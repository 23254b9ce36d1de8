//! Serves the browser editor (built by `scripts/build-editor`) at `/`, under a strict
//! content security policy. Where it has not been built, `/` says how to build it and the
//! API works as ever.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// Scripts only from tabiji itself (and WebAssembly compiled from them), no inline script or
/// style, no framing: a template or record shown in the editor cannot run code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Where `scripts/build-editor` puts the editor, relative to the checkout.
pub const DEFAULT_DIR: &str = "target/editor/dist";

/// Is a built editor in `dir`?
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file() && dir.join("tabiji_editor_bg.wasm").is_file()
}

/// `router` with the editor's files (or the page saying how to build them) as its fallback.
pub fn serve_from<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    dir: Option<&PathBuf>,
) -> Router<S> {
    let headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        // The files keep their names from build to build: browsers must ask again.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    match dir.cloned() {
        // `scripts/build-editor` writes a gzip copy beside each file: the WebAssembly shrinks
        // from 4.1 MB to 0.7 MB, at no cost per request.
        Some(dir) => {
            let files = headers.service(ServeDir::new(&dir).precompressed_gzip());
            router.fallback(move |request: Request| {
                let files = files.clone();
                // Asked each time: an editor built while tabiji runs is served at once.
                let built = is_built(&dir);
                async move {
                    if hidden(request.uri().path()) {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    if !built {
                        return not_built(request.uri().clone()).await;
                    }
                    match files.oneshot(request).await {
                        Ok(response) => response.into_response(),
                        Err(never) => match never {},
                    }
                }
            })
        }
        None => router.fallback(not_built),
    }
}

/// Dot files and folders (`.git`, `.env`) are never served, whatever folder was given.
fn hidden(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment.starts_with('.') || segment.to_ascii_lowercase().starts_with("%2e"))
}

async fn not_built(uri: Uri) -> Response {
    if uri.path() != "/" && uri.path() != "/index.html" {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><meta charset=utf-8><title>tabiji</title>\
             <h1>The editor is not built</h1>\
             <p>Run <code>scripts/build-editor</code> in the tabiji checkout, then reload. It needs \
             a Rust toolchain for wasm32: <code>rustup target add wasm32-unknown-unknown</code>, or \
             on Debian 12 <code>apt-get install rustc-web rust-web-src lld-19</code>. \
             Start tabiji with <code>--editor-dir</code> if the editor lives elsewhere.</p>\
             <p>The API works meanwhile: <a href=/api/health>/api/health</a>, \
             <a href=/api/openapi.json>/api/openapi.json</a>.</p>",
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn get(router: Router, path: &str) -> Response {
        router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_unbuilt_editor_says_how_to_build_it_and_the_api_still_answers() {
        let api = || {
            serve_from(
                Router::new().route("/api/health", axum::routing::get(|| async { "ok" })),
                Some(&PathBuf::from("/nonexistent/editor")),
            )
        };
        let page = get(api(), "/").await;
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(page.into_body(), 1 << 16)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("scripts/build-editor"));
        assert_eq!(get(api(), "/api/health").await.status(), StatusCode::OK);
        assert_eq!(get(api(), "/other").await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_editor_built_while_tabiji_runs_is_served_without_a_restart() {
        let dir = std::env::temp_dir().join(format!("tabiji-editor-later-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let router = serve_from(Router::new(), Some(&dir));
        assert_eq!(
            get(router.clone(), "/").await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        std::fs::write(dir.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(dir.join("tabiji_editor_bg.wasm"), b"\0asm").unwrap();
        assert_eq!(get(router, "/").await.status(), StatusCode::OK);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn built_files_are_served_under_the_policy() {
        let base = std::env::temp_dir().join(format!("tabiji-editor-test-{}", std::process::id()));
        let dir = base.join("dist");
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(base.join("secret.txt"), "outside").unwrap();
        std::fs::write(dir.join(".env"), "TOKEN=1").unwrap();
        std::fs::write(dir.join(".git/config"), "[core]").unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(dir.join("tabiji_editor_bg.wasm"), b"\0asm").unwrap();
        let router = serve_from(Router::new(), Some(&dir));
        let page = get(router.clone(), "/").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        let wasm = get(router.clone(), "/tabiji_editor_bg.wasm").await;
        assert_eq!(wasm.headers()[header::CONTENT_TYPE], "application/wasm");
        std::fs::write(dir.join("tabiji_editor_bg.wasm.gz"), b"gzipped").unwrap();
        let gzipped = router
            .clone()
            .oneshot(
                Request::get("/tabiji_editor_bg.wasm")
                    .header(header::ACCEPT_ENCODING, "gzip")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gzipped.headers()[header::CONTENT_TYPE], "application/wasm");
        for outside in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/.env",
            "/.git/config",
            "/%2Egit/config",
        ] {
            assert_eq!(
                get(router.clone(), outside).await.status(),
                StatusCode::NOT_FOUND,
                "{outside}"
            );
        }
        assert_eq!(get(router, "/index.html").await.status(), StatusCode::OK);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
