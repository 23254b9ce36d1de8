//! Calls to tabiji's HTTP API from the browser: same origin, the session cookie, JSON both ways.

use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestCredentials, RequestInit, Response};

/// Why a call gave no result, in words for the status line.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// No answer (server down, network gone).
    Network,
    /// There is no session, or the login and password were wrong.
    Unauthenticated,
    /// The session ended; the server's reason (`signed_in_elsewhere`, `idle`, …).
    SessionEnded(String),
    /// The server refused: its code, its message, each detail as `field: message`, and where
    /// in the code it was sent the problem is (line and column), when it says.
    Refused {
        code: String,
        message: String,
        details: Vec<String>,
        position: Option<(u32, u32)>,
    },
}

impl ApiError {
    /// The server's error body (`{"error": {"message", "details": [{field, message}]}}`).
    fn from_body(status: u16, body: &Value) -> ApiError {
        let error = &body["error"];
        if status == 401 {
            return match (error["code"].as_str(), error["reason"].as_str()) {
                (Some("session_ended"), Some(reason)) => ApiError::SessionEnded(reason.to_string()),
                _ => ApiError::Unauthenticated,
            };
        }
        let code = error["code"].as_str().unwrap_or_default().to_string();
        let message = error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let details = error["details"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|d| {
                        let text = d["message"].as_str().unwrap_or_default();
                        match d["field"].as_str() {
                            Some(field) => format!("{field}: {text}"),
                            None => text.to_string(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let position = match (error["line"].as_u64(), error["column"].as_u64()) {
            (Some(line), Some(column)) => Some((line as u32, column as u32)),
            _ => None,
        };
        ApiError::Refused {
            code,
            message,
            details,
            position,
        }
    }
}

/// `text` as a URL path segment or query value: every byte but the unreserved ones escaped,
/// so a name with `/`, `?`, `#`, `%` or spaces (a role called `受付 front/desk`) reaches the
/// server whole.
pub fn encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub async fn get(path: &str) -> Result<Value, ApiError> {
    call("GET", path, None).await
}

/// The entities the user may see, each with its label (`{"ja": …, "en": …}`), as the schema
/// lists them; none when the schema cannot be read.
pub async fn entity_labels() -> Vec<(String, Value)> {
    let Ok(answer) = get("/api/schema").await else {
        return Vec::new();
    };
    answer["entities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["label"].clone())))
        .collect()
}

pub async fn post(path: &str, body: &Value) -> Result<Value, ApiError> {
    call("POST", path, Some(body)).await
}

pub async fn patch(path: &str, body: &Value) -> Result<Value, ApiError> {
    call("PATCH", path, Some(body)).await
}

pub async fn put(path: &str, body: &Value) -> Result<Value, ApiError> {
    call("PUT", path, Some(body)).await
}

pub async fn delete(path: &str) -> Result<Value, ApiError> {
    call("DELETE", path, None).await
}

/// Sends `file` as the body of a POST to `path`, asking to be answered as soon as the server
/// has it (`Prefer: respond-async`); `sent(loaded, total)` hears how much has gone. An XHR,
/// because `fetch` does not tell how far an upload is.
pub async fn upload(
    path: &str,
    file: &web_sys::File,
    sent: impl Fn(f64, f64) + 'static,
) -> Result<Value, ApiError> {
    use wasm_bindgen::closure::Closure;
    use web_sys::{ProgressEvent, XmlHttpRequest};
    let network = |_| ApiError::Network;
    let request = XmlHttpRequest::new().map_err(network)?;
    request.open("POST", path).map_err(network)?;
    for (name, value) in [
        ("accept", "application/json"),
        ("content-type", "application/octet-stream"),
        ("prefer", "respond-async"),
    ] {
        request.set_request_header(name, value).map_err(network)?;
    }
    let progress = Closure::<dyn Fn(ProgressEvent)>::new(move |e: ProgressEvent| {
        if e.length_computable() {
            sent(e.loaded(), e.total());
        }
    });
    request
        .upload()
        .map_err(network)?
        .set_onprogress(Some(progress.as_ref().unchecked_ref()));
    let ended = js_sys::Promise::new(&mut |resolve, _| request.set_onloadend(Some(&resolve)));
    request.send_with_opt_blob(Some(&**file)).map_err(network)?;
    let _ = JsFuture::from(ended).await;
    // The closure must live until the upload has ended.
    drop(progress);
    let status = request.status().map_err(network)?;
    if status == 0 {
        return Err(ApiError::Network);
    }
    let text = request
        .response_text()
        .map_err(network)?
        .unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        Err(ApiError::from_body(status, &value))
    }
}

/// Waits `millis` milliseconds without holding the page.
pub async fn pause(millis: i32) {
    let done = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, millis);
        }
    });
    let _ = JsFuture::from(done).await;
}

async fn call(method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    if let Some(body) = body {
        init.set_body(&wasm_bindgen::JsValue::from_str(&body.to_string()));
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(|_| ApiError::Network)?;
    let headers = request.headers();
    headers
        .set("accept", "application/json")
        .map_err(|_| ApiError::Network)?;
    if body.is_some() {
        headers
            .set("content-type", "application/json")
            .map_err(|_| ApiError::Network)?;
    }
    let window = web_sys::window().ok_or(ApiError::Network)?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| ApiError::Network)?
        .dyn_into()
        .map_err(|_| ApiError::Network)?;
    let text = JsFuture::from(response.text().map_err(|_| ApiError::Network)?)
        .await
        .map_err(|_| ApiError::Network)?
        .as_string()
        .unwrap_or_default();
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if response.ok() {
        Ok(value)
    } else {
        Err(ApiError::from_body(response.status(), &value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_travel_whole_in_addresses() {
        assert_eq!(encoded("ota_users-1.csv~"), "ota_users-1.csv~");
        assert_eq!(
            encoded("受付 front/desk?#%"),
            "%E5%8F%97%E4%BB%98%20front%2Fdesk%3F%23%25"
        );
    }

    #[test]
    fn refusals_keep_the_servers_words() {
        let body = json!({"error": {"code": "invalid", "message": "the flow has problems",
            "details": [{"field": "nodes.email_1", "code": "unknown_template", "message": "no such template"},
                        {"code": "x", "message": "plain"}]}});
        assert_eq!(
            ApiError::from_body(422, &body),
            ApiError::Refused {
                code: "invalid".into(),
                message: "the flow has problems".into(),
                details: vec!["nodes.email_1: no such template".into(), "plain".into()],
                position: None,
            }
        );
        assert_eq!(ApiError::from_body(401, &body), ApiError::Unauthenticated);
        let ended = json!({"error": {"code": "session_ended", "reason": "signed_in_elsewhere", "message": "…"}});
        assert_eq!(
            ApiError::from_body(401, &ended),
            ApiError::SessionEnded("signed_in_elsewhere".into())
        );
        assert_eq!(
            ApiError::from_body(502, &Value::Null),
            ApiError::Refused {
                code: String::new(),
                message: "HTTP 502".into(),
                details: vec![],
                position: None,
            }
        );
        let script = json!({"error": {"code": "script_syntax", "message": "line 2, column 9: …", "line": 2, "column": 9}});
        assert!(matches!(
            ApiError::from_body(422, &script),
            ApiError::Refused {
                position: Some((2, 9)),
                ..
            }
        ));
    }
}
