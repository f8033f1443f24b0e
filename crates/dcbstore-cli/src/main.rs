//! The `dcbstore` command-line tool: schema, log, roles, export and import.
//!
//! Exit status: 0 success, 1 error, 2 usage, 3 append condition failed.

mod args;
mod commands;
mod input;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use args::{Cli, LogFormat, EXIT_CONFLICT};
use commands::{Failure, Outcome};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if json_logs_requested() {
                print_json_error(&e.render().to_string(), 2);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(2);
        }
    };
    let log_format = cli.log_format;
    if let Err(message) = cli.check_limits() {
        if log_format == LogFormat::Json {
            print_json_error(&message, 2);
        } else {
            let _ = Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, message)
                .print();
        }
        return ExitCode::from(2);
    }
    // Every secret the connection may carry: the raw string's and
    // PGPASSWORD first, then the password the password file gives.
    let mut known = cli
        .database_url
        .as_deref()
        .map(dcbstore::connection::secrets)
        .unwrap_or_default();
    known.extend(std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()));
    let secrets: logging::Secrets = std::sync::Arc::new(std::sync::RwLock::new(known));
    logging::init_logging(log_format, secrets.clone());
    let options = commands::connect_options(cli.database_url.clone());
    if let (Ok(o), Ok(mut s)) = (&options, secrets.write()) {
        s.extend(o.secrets());
    }
    let fail = |message: String, code: u8| {
        // Defence in depth: whatever the error says, no password is printed.
        let message = match secrets.read() {
            Ok(s) => dcbstore::connection::redact(&message, &s),
            Err(_) => "an error occurred (its message is withheld)".to_string(),
        };
        match log_format {
            LogFormat::Json => print_json_error(&message, code),
            LogFormat::Text => eprintln!("dcbstore: {message}"),
        }
        ExitCode::from(code)
    };
    let options = match options {
        Ok(o) => o,
        Err(e) => return fail(e.to_string(), 1),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}"), 1),
    };
    let user = options.config.get_user().map(str::to_string);
    match runtime.block_on(commands::run(cli, options)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Conflict) => ExitCode::from(EXIT_CONFLICT),
        Ok(Outcome::Check(code)) => ExitCode::from(code),
        Err(Failure::Usage(message)) => fail(message, 2),
        Err(Failure::Error(e)) => fail(commands::explain(&e, user.as_deref()), 1),
    }
}

/// Whether `--log-format json` (or `DCBSTORE_LOG_FORMAT=json`) was asked
/// for, when the arguments did not parse.
fn json_logs_requested() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let flag = args.iter().enumerate().any(|(i, a)| {
        a == "--log-format=json"
            || (a == "--log-format" && args.get(i + 1).is_some_and(|v| v == "json"))
    });
    flag || std::env::var("DCBSTORE_LOG_FORMAT").is_ok_and(|v| v == "json")
}

/// The final error as one JSON record on stderr, in the shape of the JSON
/// log records.
fn print_json_error(message: &str, exit_status: u8) {
    let record = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "fields": {"message": message.trim_end(), "exit_status": exit_status},
        "target": "dcbstore",
    });
    eprintln!("{record}");
}
