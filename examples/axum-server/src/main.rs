//! `cargo run -p example-axum-server --release -- [--addr ADDR] [--workers N]
//! [--service-ms MS] [--max-body BYTES] [--unprotected] [--redis URL | --postgres URL]`
//!
//! Serves [`example_axum_server::app`]; see the README for the stack and how to load it.

use std::process::ExitCode;

use example_axum_server::{ArgsError, Options, StoreChoice, USAGE, app};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("error: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let (router, store) = match &options.store {
        StoreChoice::Memory => (app(&options.config)?, "in memory".to_owned()),
        #[cfg(feature = "redis")]
        StoreChoice::Redis(url) => {
            let store = steadfast::idempotency::RedisStore::connect(url).await?;
            (
                example_axum_server::app_with_store(&options.config, store)?,
                format!("Redis at {url}"),
            )
        }
        #[cfg(feature = "postgres")]
        StoreChoice::Postgres(url) => {
            use steadfast::idempotency::PostgresStore;
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    eprintln!("postgres connection closed: {err}");
                }
            });
            PostgresStore::migrate(&client, PostgresStore::DEFAULT_TABLE).await?;
            let store = PostgresStore::new(client);
            (
                example_axum_server::app_with_store(&options.config, store)?,
                format!("PostgreSQL at {url}"),
            )
        }
        other => return Err(format!("store {other:?} is not built in").into()),
    };
    let listener = tokio::net::TcpListener::bind(options.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("idempotency records: {store}");
    println!("stack, outermost first:\n{}", options.config.describe());
    println!("routes: GET /work, POST /orders (Idempotency-Key), GET /stats");
    axum::serve(listener, router).await?;
    Ok(())
}
