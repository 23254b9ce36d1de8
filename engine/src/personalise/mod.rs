//! Personalisation: rhai snippets in a sandbox ([`script`]) and handlebars templates that call
//! them and include reusable parts ([`render`]); signed tracking and unsubscribe links
//! ([`track`]).

pub mod render;
pub mod script;
pub mod track;

pub use render::{DraftError, Item, Library, RenderError};
pub use script::{Limits, Sandbox, Script, ScriptError};
pub use tabiji_model::content::Rendered;
pub use track::{LinkKind, Tracker, UNSUBSCRIBE_PLACEHOLDER};

use std::sync::{Arc, Mutex};

use tabiji_storage::content;
use tabiji_storage::error::StorageError;
use tabiji_storage::records::Store;

/// The compiled library, rebuilt when anything saved changes. Workers and the API each keep
/// one; every use checks the stamp (one small query), so a save is used by the next send.
pub struct Content {
    sandbox: Arc<Sandbox>,
    compiled: Mutex<Option<(content::Stamp, Arc<Library>)>>,
}

impl Content {
    pub fn new(sandbox: Sandbox) -> Self {
        Content {
            sandbox: Arc::new(sandbox),
            compiled: Mutex::new(None),
        }
    }

    pub async fn library(&self, store: &Store) -> Result<Arc<Library>, StorageError> {
        let stamp = content::stamp(store).await?;
        if let Some((seen, library)) = &*self.compiled.lock().expect("not poisoned")
            && *seen == stamp
        {
            return Ok(library.clone());
        }
        let items: Vec<Item> = content::all(store)
            .await?
            .into_iter()
            .map(|c| Item {
                kind: c.kind,
                key: c.key,
                definition: c.definition,
            })
            .collect();
        let sandbox = self.sandbox.clone();
        let (library, rejected) = Library::build(sandbox, &items);
        for (item, problems) in rejected {
            tracing::warn!(
                kind = item.kind.as_str(),
                key = item.key,
                problems = ?problems,
                "saved content does not compile and is left out"
            );
        }
        let library = Arc::new(library);
        *self.compiled.lock().expect("not poisoned") = Some((stamp, library.clone()));
        Ok(library)
    }
}

/// Replaces `from` with `to` in every string of a JSON value (a LINE flex message's links).
pub fn replace_in_strings(value: &mut serde_json::Value, from: &str, to: &str) {
    match value {
        serde_json::Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        serde_json::Value::Array(items) => {
            for item in items {
                replace_in_strings(item, from, to);
            }
        }
        serde_json::Value::Object(fields) => {
            for item in fields.values_mut() {
                replace_in_strings(item, from, to);
            }
        }
        _ => {}
    }
}

/// Runs `work` over `items` on the blocking pool, split into one share per core; the results
/// in the order of `items`. Rendering a batch is CPU work (templates, snippets): one thread
/// would leave the other cores idle.
pub async fn on_cores<I, O, F>(items: Vec<I>, work: F) -> Result<Vec<O>, tokio::task::JoinError>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I) -> O + Send + Sync + 'static,
{
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let share = items.len().div_ceil(cores).max(1);
    let work = Arc::new(work);
    let mut items = items.into_iter();
    let mut shares = Vec::with_capacity(cores);
    loop {
        let chunk: Vec<I> = items.by_ref().take(share).collect();
        if chunk.is_empty() {
            break;
        }
        let work = work.clone();
        shares.push(tokio::task::spawn_blocking(move || {
            chunk.into_iter().map(|item| work(item)).collect::<Vec<O>>()
        }));
    }
    let mut out = Vec::new();
    for share in shares {
        out.extend(share.await?);
    }
    Ok(out)
}

impl Default for Content {
    fn default() -> Self {
        Content::new(Sandbox::default())
    }
}
