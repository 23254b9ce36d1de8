//! Personalisation: rhai snippets in a sandbox ([`script`]) and handlebars templates that call
//! them and include reusable parts ([`render`]); signed tracking and unsubscribe links
//! ([`track`]).

pub mod render;
pub mod script;
pub mod track;

pub use render::{Item, Library, RenderError};
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

impl Default for Content {
    fn default() -> Self {
        Content::new(Sandbox::default())
    }
}
