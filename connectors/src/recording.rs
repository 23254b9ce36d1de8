//! The `test` channel: accepts every message and records it, in memory and, when a path is
//! given, as one JSON line per message appended to a file and flushed before it answers. The
//! file plays the provider in crash tests: what is in it was "sent". It takes messages
//! unrendered unless asked to render them ([`Recording::rendering`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tabiji_model::flow::Channel;

use crate::{BoxFuture, Connector, Message, Outcome};

pub struct Recording {
    file: Option<Mutex<std::fs::File>>,
    /// How long a batch takes, as a slow provider would.
    delay: Duration,
    /// Keep the messages in memory (tests read them); off for long runs.
    keep: bool,
    /// Ask for rendered messages, as a real channel does.
    render: bool,
    sent: Mutex<Vec<Message>>,
    count: AtomicUsize,
}

impl Recording {
    /// Records in memory only.
    pub fn new() -> Self {
        Recording {
            file: None,
            delay: Duration::ZERO,
            keep: true,
            render: false,
            sent: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
        }
    }

    /// Counts messages without keeping them: for benchmarks and long-running processes.
    pub fn counting() -> Self {
        Recording {
            keep: false,
            ..Recording::new()
        }
    }

    /// Also appends each message to `path` (created if missing).
    pub fn to_file(path: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Recording {
            file: Some(Mutex::new(file)),
            ..Recording::counting()
        })
    }

    /// Asks for each message rendered from its template, as a real channel does: a template
    /// that is missing or fails for a contact fails that delivery.
    pub fn rendering(mut self) -> Self {
        self.render = true;
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Everything recorded so far, in order (nothing when only counting).
    pub fn sent(&self) -> Vec<Message> {
        self.sent.lock().expect("not poisoned").clone()
    }

    /// How many messages were accepted.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Default for Recording {
    fn default() -> Self {
        Recording::new()
    }
}

impl Connector for Recording {
    fn channel(&self) -> Channel {
        Channel::Test
    }

    fn required_fields(&self) -> Vec<String> {
        vec!["email".into()]
    }

    fn needs_content(&self) -> bool {
        self.render
    }

    fn max_batch(&self) -> usize {
        500
    }

    fn send_batch<'a>(
        &'a self,
        batch: &'a [Message],
        _deadline: std::time::Instant,
    ) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if let Some(file) = &self.file {
                let mut lines = String::new();
                for m in batch {
                    lines.push_str(
                        &json!({
                            "delivery": m.delivery_id,
                            "key": m.idempotency_key,
                            "contact": m.contact_id,
                            "template": m.template,
                            "to": m.to,
                            "content": m.content,
                        })
                        .to_string(),
                    );
                    lines.push('\n');
                }
                let written = {
                    let mut file = file.lock().expect("not poisoned");
                    file.write_all(lines.as_bytes()).and_then(|_| file.flush())
                };
                if let Err(e) = written {
                    let reason = format!("the recording file could not be written: {e}");
                    return batch
                        .iter()
                        .map(|_| Outcome::Transient(reason.clone()))
                        .collect();
                }
            }
            self.count.fetch_add(batch.len(), Ordering::Relaxed);
            if self.keep {
                self.sent
                    .lock()
                    .expect("not poisoned")
                    .extend(batch.iter().cloned());
            }
            batch
                .iter()
                .map(|m| Outcome::Accepted {
                    provider_ref: format!("test-{}", m.delivery_id),
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    fn soon() -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_secs(30)
    }

    use super::*;
    use serde_json::Map;

    fn message(id: i64) -> Message {
        Message {
            delivery_id: id,
            idempotency_key: format!("1:n{id}:0"),
            contact_id: id * 10,
            template: "welcome".into(),
            sender: None,
            to: Map::new(),
            content: None,
            unsubscribe_url: None,
            status_url: None,
        }
    }

    #[tokio::test]
    async fn records_in_memory_and_to_the_file() {
        let path = std::env::temp_dir().join(format!("tabiji-rec-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let channel = Recording::to_file(path.clone()).unwrap();
        let outcomes = channel.send_batch(&[message(1), message(2)], soon()).await;
        assert_eq!(
            outcomes,
            vec![
                Outcome::Accepted {
                    provider_ref: "test-1".into()
                },
                Outcome::Accepted {
                    provider_ref: "test-2".into()
                }
            ]
        );
        assert_eq!(channel.count(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["delivery"], 2);
        assert_eq!(lines[1]["contact"], 20);
        std::fs::remove_file(path).unwrap();
    }
}
