//! Throw-away databases for tests and benchmarks: a SQLite file in the temp folder, or a fresh
//! PostgreSQL database created next to the one `DATABASE_URL` names and dropped afterwards.

use std::path::PathBuf;

use rand::RngCore;
use sea_orm::{ConnectionTrait, DbErr};

use crate::Db;

pub struct Scratch {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Postgres { admin_url: String, name: String },
}

fn suffix() -> String {
    format!("{:016x}", rand::rng().next_u64())
}

impl Scratch {
    pub fn sqlite() -> Scratch {
        let path = std::env::temp_dir().join(format!("tabiji-scratch-{}.db", suffix()));
        Scratch {
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::File(path),
        }
    }

    /// A new, empty database on the server `admin_url` points at.
    pub async fn postgres(admin_url: &str) -> Result<Scratch, DbErr> {
        let name = format!("tabiji_scratch_{}", suffix());
        let admin = Db::connect(admin_url).await?;
        admin
            .conn
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.conn.close().await?;
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url, String::new()),
        };
        let server = base.rsplit_once('/').map(|(s, _)| s).unwrap_or(base);
        Ok(Scratch {
            url: format!("{server}/{name}{query}"),
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_string(),
                name,
            },
        })
    }

    /// The scratch databases every test should run against: SQLite always, PostgreSQL when
    /// `DATABASE_URL` names one.
    pub async fn all_backends() -> Vec<Scratch> {
        let mut out = vec![Scratch::sqlite()];
        if let Ok(url) = std::env::var("DATABASE_URL")
            && url.starts_with("postgres")
        {
            out.push(
                Scratch::postgres(&url)
                    .await
                    .unwrap_or_else(|e| panic!("DATABASE_URL is set but unusable: {e}")),
            );
        }
        out
    }

    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::File(path) => {
                for ext in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(admin) = Db::connect(&admin_url).await {
                    let _ = admin
                        .conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            }
        }
    }
}
