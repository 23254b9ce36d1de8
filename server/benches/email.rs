//! Personalised e-mail throughput (issue 6): N messages (default 20,000) rendered from a
//! template with one rhai snippet, DKIM-signed (RSA 2048) and delivered over SMTP to a local
//! sink, against the same messages without personalisation or signing, in the same run. Also
//! a simple rhai rule evaluated for 100,000 contacts, against the same rule in Rust.
//!
//! `cargo bench -p tabiji-server --bench email` (or `scripts/bench/email`); BENCH_MESSAGES
//! sets N, BENCH_CONNECTIONS the SMTP connections (default 8).
//!
//! The sink is a minimal SMTP server in this process (it answers each command and discards
//! the data), so the figures are tabiji's side of the conversation, not a relay's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tabiji_connectors::smtp::{Dkim, Smtp, SmtpSettings};
use tabiji_connectors::{Connector, Message, Outcome};
use tabiji_engine::personalise::{Item, Library, Sandbox, on_cores};
use tabiji_model::content::{ContentKind, Rendered};
use tabiji_model::flow::Channel;
use tabiji_server::demo::{Rng, tourist};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Answers SMTP as a relay would and throws the messages away.
async fn sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    if write.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn library() -> Library {
    let items = vec![
        Item {
            kind: ContentKind::Snippet,
            key: "greeting".into(),
            definition: json!({"source": "if contact.prefecture == \"愛知県\" { `${contact.family_name}様、地元の秋を` } else { `${contact.family_name}様、愛知の秋を` }"}),
        },
        Item {
            kind: ContentKind::Part,
            key: "footer".into(),
            definition: json!({"body": "<p>一般社団法人 旅路観光協会</p>"}),
        },
        Item {
            kind: ContentKind::Template,
            key: "autumn".into(),
            definition: json!({
                "channel": "email",
                "subject": "{{script \"greeting\"}}",
                "preheader": "紅葉の特別プラン",
                "html": format!("<html><body><p>{{{{script \"greeting\"}}}}</p><p>{{{{contact.family_name}}}} {{{{contact.given_name}}}}様</p>{}{{{{> footer}}}}</body></html>", "<p>秋の旅のご案内です。</p>".repeat(20)),
                "text": format!("{{{{script \"greeting\"}}}}\n{{{{contact.family_name}}}} {{{{contact.given_name}}}}様\n{}", "秋の旅のご案内です。\n".repeat(20))
            }),
        },
    ];
    let (library, rejected) = Library::build(Arc::new(Sandbox::default()), &items);
    assert!(rejected.is_empty(), "{rejected:?}");
    library
}

fn smtp(port: u16, connections: u32, dkim: bool) -> Smtp {
    let dkim = dkim.then(|| {
        let pem = Dkim::generate_pem().unwrap();
        Dkim::from_pem("kanko.example.jp", "bench", &pem, "bench").unwrap()
    });
    Smtp::new(SmtpSettings {
        url: format!("smtp://127.0.0.1:{port}"),
        password: None,
        default_sender: "旅路観光協会 <news@kanko.example.jp>".into(),
        dkim,
        connections,
        timeout: Duration::from_secs(30),
    })
    .unwrap()
}

fn message(i: usize, contact: &Map<String, Value>, content: Rendered) -> Message {
    let mut to = Map::new();
    to.insert("email".into(), contact["email"].clone());
    Message {
        delivery_id: i as i64,
        idempotency_key: format!("1:mail:{i}"),
        contact_id: i as i64,
        template: "autumn".into(),
        sender: None,
        to,
        content: Some(content),
        unsubscribe_url: None,
        status_url: None,
    }
}

/// Sends every contact one message in batches the way the engine does (render a batch on the
/// blocking pool, one share per core, then hand it to the connector); messages per second.
async fn run(
    contacts: &Arc<Vec<Map<String, Value>>>,
    connector: &Smtp,
    personalised: bool,
    library: &Arc<Library>,
) -> f64 {
    let plain = Rendered {
        channel: Channel::Email,
        subject: "秋の旅のご案内".into(),
        preheader: String::new(),
        html: format!(
            "<html><body>{}</body></html>",
            "<p>秋の旅のご案内です。</p>".repeat(22)
        ),
        text: "秋の旅のご案内です。\n".repeat(22),
        flex: None,
    };
    let batch = connector.max_batch();
    let started = Instant::now();
    let mut next = 0;
    while next < contacts.len() {
        let end = (next + batch).min(contacts.len());
        let (contacts2, library2, plain2) = (contacts.clone(), library.clone(), plain.clone());
        let messages = on_cores((next..end).collect(), move |i| {
            let content = if personalised {
                library2.render("autumn", &contacts2[i]).unwrap()
            } else {
                plain2.clone()
            };
            message(i, &contacts2[i], content)
        })
        .await
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        for outcome in connector.send_batch(&messages, deadline).await {
            assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
        }
        next = end;
    }
    contacts.len() as f64 / started.elapsed().as_secs_f64()
}

fn rule_benchmark(contacts: &[Map<String, Value>]) {
    let sandbox = Sandbox::default();
    let rule = sandbox
        .compile("contact.prefecture == \"愛知県\" && contact.gender == \"female\"")
        .unwrap();
    let converted: Vec<_> = contacts.iter().map(Sandbox::contact).collect();
    let started = Instant::now();
    let mut yes = 0usize;
    for c in &converted {
        yes += usize::from(sandbox.decide(&rule, c).unwrap());
    }
    let rhai = converted.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut native_yes = 0usize;
    for c in contacts {
        native_yes += usize::from(
            c.get("prefecture").and_then(Value::as_str) == Some("愛知県")
                && c.get("gender").and_then(Value::as_str) == Some("female"),
        );
    }
    let native = contacts.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(yes, native_yes);
    let started = Instant::now();
    for c in contacts {
        let converted = Sandbox::contact(c);
        sandbox.decide(&rule, &converted).unwrap();
    }
    let with_conversion = contacts.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "rhai rule: {rhai:.0} evaluations/s ({with_conversion:.0}/s converting the contact each time); Rust: {native:.0}/s; rhai/Rust {:.3} ({yes} of {} matched)",
        rhai / native,
        contacts.len()
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let connections: u32 = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut rng = Rng::new(7);
    let contacts: Vec<Map<String, Value>> = (0..n.max(100_000))
        .map(|i| {
            let mut t = tourist(&mut rng, i);
            t["email"] = json!(format!("guest{i}@example.jp"));
            t.as_object().unwrap().clone()
        })
        .collect();
    rule_benchmark(&contacts[..100_000]);

    let contacts = Arc::new(contacts[..n].to_vec());
    let library = Arc::new(library());
    let port = sink().await;
    let reference = smtp(port, connections, false);
    let signed = smtp(port, connections, true);
    // Warm the pools.
    run(
        &Arc::new(contacts[..200].to_vec()),
        &reference,
        false,
        &library,
    )
    .await;
    run(&Arc::new(contacts[..200].to_vec()), &signed, true, &library).await;

    // What signing alone costs, one thread: the ceiling DKIM puts on each core.
    let pem = Dkim::generate_pem().unwrap();
    let der = {
        use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
        rsa::RsaPrivateKey::from_pkcs1_pem(&pem)
            .unwrap()
            .to_pkcs1_der()
            .unwrap()
    };
    let signer =
        tabiji_connectors::dkim::Signer::new("kanko.example.jp", "bench", der.as_bytes()).unwrap();
    let sample = signed
        .compose(&message(
            0,
            &contacts[0],
            library.render("autumn", &contacts[0]).unwrap(),
        ))
        .unwrap()
        .1;
    let started = Instant::now();
    for _ in 0..1_000 {
        std::hint::black_box(signer.sign(&sample, 0));
    }
    println!(
        "DKIM (RSA 2048) signing alone: {:.0} messages/s on one thread",
        1_000.0 / started.elapsed().as_secs_f64()
    );

    // Rendering alone (template, part, three snippet calls), one thread.
    let started = Instant::now();
    for contact in contacts.iter().take(5_000) {
        std::hint::black_box(library.render("autumn", contact).unwrap());
    }
    println!(
        "rendering alone: {:.0} messages/s on one thread",
        contacts.len().min(5_000) as f64 / started.elapsed().as_secs_f64()
    );
    // Composing the MIME message without signing, one thread.
    let rendered = library.render("autumn", &contacts[0]).unwrap();
    let started = Instant::now();
    for i in 0..5_000 {
        std::hint::black_box(
            reference
                .compose(&message(i, &contacts[0], rendered.clone()))
                .unwrap(),
        );
    }
    println!(
        "composing MIME alone: {:.0} messages/s on one thread",
        5_000.0 / started.elapsed().as_secs_f64()
    );

    let base = run(&contacts, &reference, false, &library).await;
    let full = run(&contacts, &signed, true, &library).await;
    println!(
        "e-mail, {n} messages over {connections} SMTP connections: personalised + DKIM {full:.0}/s; plain, unsigned {base:.0}/s; ratio {:.2}",
        full / base
    );
}
